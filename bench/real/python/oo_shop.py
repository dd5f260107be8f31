"""Object-oriented workload: an order-processing simulation with a small
class hierarchy, super() calls, special methods, properties, __slots__
classes and exceptions used for control flow.

  python oo_shop.py [ORDERS] [SEED]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


class Rng:
    """A linear congruential generator: the same sequence on every run."""
    __slots__ = ("state",)

    def __init__(self, seed):
        self.state = seed & 0x7FFFFFFF

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 4) % n


class Money:
    __slots__ = ("cents",)

    def __init__(self, cents):
        self.cents = cents

    def __add__(self, other):
        return Money(self.cents + other.cents)

    def __sub__(self, other):
        return Money(self.cents - other.cents)

    def __mul__(self, k):
        return Money(self.cents * k)

    def __lt__(self, other):
        return self.cents < other.cents

    def __eq__(self, other):
        return isinstance(other, Money) and self.cents == other.cents

    def __hash__(self):
        return self.cents

    def __repr__(self):
        return "%d.%02d" % divmod(self.cents, 100)


class Item:
    kind = "item"

    def __init__(self, sku, price, weight):
        self.sku = sku
        self.price = Money(price)
        self.weight = weight

    def shipping(self, distance):
        return Money(self.weight * distance // 10 + 50)

    def describe(self):
        return "%s %s@%r" % (self.kind, self.sku, self.price)


class Fragile(Item):
    kind = "fragile"

    def shipping(self, distance):
        return super().shipping(distance) * 2


class Bulky(Item):
    kind = "bulky"

    def shipping(self, distance):
        return super().shipping(distance) + Money(self.weight * 3)


class Digital(Item):
    kind = "digital"

    def __init__(self, sku, price):
        super().__init__(sku, price, 0)

    def shipping(self, distance):
        return Money(0)


class OutOfStock(Exception):
    def __init__(self, sku, missing):
        super().__init__(sku)
        self.sku = sku
        self.missing = missing


class Stock:
    def __init__(self):
        self._levels = {}
        self.restocks = 0

    def add(self, item, n):
        self._levels[item.sku] = self._levels.get(item.sku, 0) + n

    def take(self, item, n):
        if isinstance(item, Digital):
            return
        have = self._levels.get(item.sku, 0)
        if have < n:
            raise OutOfStock(item.sku, n - have)
        self._levels[item.sku] = have - n

    @property
    def total(self):
        return sum(self._levels.values())


class Line:
    __slots__ = ("item", "qty")

    def __init__(self, item, qty):
        self.item = item
        self.qty = qty

    def cost(self, distance):
        return self.item.price * self.qty + self.item.shipping(distance)


class Order:
    def __init__(self, number, customer, distance):
        self.number = number
        self.customer = customer
        self.distance = distance
        self.lines = []

    def add(self, item, qty):
        self.lines.append(Line(item, qty))
        return self

    def total(self):
        t = Money(0)
        for line in self.lines:
            t = t + line.cost(self.distance)
        return t


class Discount:
    def apply(self, order, amount):
        return amount


class Percent(Discount):
    def __init__(self, pct):
        self.pct = pct

    def apply(self, order, amount):
        return Money(amount.cents * (100 - self.pct) // 100)


class BigOrder(Discount):
    def __init__(self, threshold, off):
        self.threshold = Money(threshold)
        self.off = Money(off)

    def apply(self, order, amount):
        if self.threshold < amount:
            return amount - self.off
        return amount


class Chain(Discount):
    def __init__(self, *rules):
        self.rules = rules

    def apply(self, order, amount):
        for r in self.rules:
            amount = r.apply(order, amount)
        return amount


class Customer:
    def __init__(self, name, discount):
        self.name = name
        self.discount = discount
        self.spent = Money(0)
        self.orders = 0

    def pay(self, order):
        amount = self.discount.apply(order, order.total())
        self.spent = self.spent + amount
        self.orders += 1
        return amount


def catalogue(rng, n):
    items = []
    for i in range(n):
        sku = "S%04d" % i
        k = rng.below(4)
        price = 100 + rng.below(20000)
        if k == 0:
            items.append(Item(sku, price, 1 + rng.below(50)))
        elif k == 1:
            items.append(Fragile(sku, price, 1 + rng.below(20)))
        elif k == 2:
            items.append(Bulky(sku, price, 20 + rng.below(200)))
        else:
            items.append(Digital(sku, price))
    return items


def main(orders, seed):
    rng = Rng(seed)
    items = catalogue(rng, 300)
    stock = Stock()
    for it in items:
        stock.add(it, rng.below(40))
    rules = [Discount(), Percent(5), Percent(12), BigOrder(50000, 2500),
             Chain(Percent(3), BigOrder(80000, 4000))]
    customers = [Customer("c%d" % i, rules[i % len(rules)]) for i in range(64)]
    h = 0
    revenue = Money(0)
    for n in range(orders):
        c = customers[rng.below(len(customers))]
        order = Order(n, c, 1 + rng.below(900))
        for _ in range(1 + rng.below(5)):
            order.add(items[rng.below(len(items))], 1 + rng.below(4))
        for line in order.lines:
            while True:
                try:
                    stock.take(line.item, line.qty)
                    break
                except OutOfStock as e:
                    stock.add(line.item, e.missing + 25)
                    stock.restocks += 1
        paid = c.pay(order)
        revenue = revenue + paid
        h = mix(h, paid.cents)
        if n % 97 == 0:
            h = mix(h, len(order.lines[0].item.describe()))
    for c in sorted(customers, key=lambda c: (c.spent, c.name)):
        h = mix(h, c.spent.cents * 131 + c.orders)
    h = mix(h, stock.total)
    h = mix(h, stock.restocks)
    print("revenue", revenue, "restocks", stock.restocks)
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 12345)
