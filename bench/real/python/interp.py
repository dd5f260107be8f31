"""An interpreter written in Python: a tokenizer, a recursive-descent
parser to AST node classes, and a tree-walking evaluator that dispatches
on the node class through a dict of bound methods, running a small program
in a made-up language (functions, while loops, if, arithmetic, recursion).

  python interp.py [N] [SEED]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1

PROGRAM = """
fn gcd(a, b) { while b != 0 { let t = b; b = a % b; a = t; } return a; }
fn fib(n) { if n < 2 { return n; } return fib(n - 1) + fib(n - 2); }
fn collatz(n) { let s = 0; while n != 1 { if n % 2 == 0 { n = n / 2; } else { n = 3 * n + 1; } s = s + 1; } return s; }
fn isprime(n) {
  if n < 2 { return 0; }
  let d = 2;
  while d * d <= n { if n % d == 0 { return 0; } d = d + 1; }
  return 1;
}
fn main(n, seed) {
  let acc = seed; let i = 1; let primes = 0;
  while i <= n {
    primes = primes + isprime(i);
    acc = (acc * 31 + collatz(i) + gcd(i, seed + 97)) % 1000000007;
    i = i + 1;
  }
  return acc * 1000 + primes + fib(15);
}
"""


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


# ---- tokens

KEYWORDS = {"fn", "let", "while", "if", "else", "return"}
TWO = {"==", "!=", "<=", ">="}


def tokenize(src):
    toks, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif c.isdigit():
            j = i
            while j < n and src[j].isdigit():
                j += 1
            toks.append(("num", int(src[i:j])))
            i = j
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            w = src[i:j]
            toks.append(("kw" if w in KEYWORDS else "id", w))
            i = j
        elif src[i:i + 2] in TWO:
            toks.append(("op", src[i:i + 2]))
            i += 2
        else:
            toks.append(("op", c))
            i += 1
    toks.append(("eof", None))
    return toks


# ---- AST

class Node:
    __slots__ = ()


class Num(Node):
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v


class Var(Node):
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class BinOp(Node):
    __slots__ = ("op", "a", "b")

    def __init__(self, op, a, b):
        self.op, self.a, self.b = op, a, b


class Call(Node):
    __slots__ = ("fn", "args")

    def __init__(self, fn, args):
        self.fn, self.args = fn, args


class Let(Node):
    __slots__ = ("name", "e")

    def __init__(self, name, e):
        self.name, self.e = name, e


class Assign(Let):
    __slots__ = ()


class While(Node):
    __slots__ = ("cond", "body")

    def __init__(self, cond, body):
        self.cond, self.body = cond, body


class If(Node):
    __slots__ = ("cond", "then", "other")

    def __init__(self, cond, then, other):
        self.cond, self.then, self.other = cond, then, other


class Return(Node):
    __slots__ = ("e",)

    def __init__(self, e):
        self.e = e


class Func:
    def __init__(self, name, params, body):
        self.name, self.params, self.body = name, params, body


# ---- parser

PREC = {"==": 1, "!=": 1, "<": 2, ">": 2, "<=": 2, ">=": 2, "+": 3, "-": 3, "*": 4, "/": 4, "%": 4}


class Parser:
    def __init__(self, toks):
        self.toks = toks
        self.pos = 0

    def peek(self):
        return self.toks[self.pos]

    def take(self, kind=None, value=None):
        t = self.toks[self.pos]
        if (kind and t[0] != kind) or (value is not None and t[1] != value):
            raise SyntaxError("expected %s %s, got %r" % (kind, value, t))
        self.pos += 1
        return t

    def program(self):
        funcs = {}
        while self.peek()[0] != "eof":
            self.take("kw", "fn")
            name = self.take("id")[1]
            self.take("op", "(")
            params = []
            while self.peek()[1] != ")":
                params.append(self.take("id")[1])
                if self.peek()[1] == ",":
                    self.take()
            self.take("op", ")")
            funcs[name] = Func(name, params, self.block())
        return funcs

    def block(self):
        self.take("op", "{")
        stmts = []
        while self.peek()[1] != "}":
            stmts.append(self.statement())
        self.take("op", "}")
        return stmts

    def statement(self):
        t = self.peek()
        if t == ("kw", "let"):
            self.take()
            name = self.take("id")[1]
            self.take("op", "=")
            e = self.expr(0)
            self.take("op", ";")
            return Let(name, e)
        if t == ("kw", "while"):
            self.take()
            return While(self.expr(0), self.block())
        if t == ("kw", "if"):
            self.take()
            cond, then, other = self.expr(0), self.block(), []
            if self.peek() == ("kw", "else"):
                self.take()
                other = self.block()
            return If(cond, then, other)
        if t == ("kw", "return"):
            self.take()
            e = self.expr(0)
            self.take("op", ";")
            return Return(e)
        name = self.take("id")[1]
        self.take("op", "=")
        e = self.expr(0)
        self.take("op", ";")
        return Assign(name, e)

    def expr(self, min_prec):
        a = self.atom()
        while True:
            t = self.peek()
            p = PREC.get(t[1]) if t[0] == "op" else None
            if p is None or p <= min_prec:
                return a
            self.take()
            a = BinOp(t[1], a, self.expr(p))

    def atom(self):
        t = self.take()
        if t[0] == "num":
            return Num(t[1])
        if t[0] == "id":
            if self.peek()[1] == "(":
                self.take()
                args = []
                while self.peek()[1] != ")":
                    args.append(self.expr(0))
                    if self.peek()[1] == ",":
                        self.take()
                self.take("op", ")")
                return Call(t[1], args)
            return Var(t[1])
        if t == ("op", "("):
            e = self.expr(0)
            self.take("op", ")")
            return e
        raise SyntaxError("unexpected %r" % (t,))


# ---- evaluator

class ReturnValue(Exception):
    def __init__(self, v):
        self.v = v


OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
       "/": lambda a, b: a // b, "%": lambda a, b: a % b,
       "<": lambda a, b: int(a < b), ">": lambda a, b: int(a > b),
       "<=": lambda a, b: int(a <= b), ">=": lambda a, b: int(a >= b),
       "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b)}


class Interpreter:
    def __init__(self, funcs):
        self.funcs = funcs
        self.steps = 0
        self.eval_for = {Num: self.e_num, Var: self.e_var, BinOp: self.e_bin, Call: self.e_call}
        self.exec_for = {Let: self.s_let, Assign: self.s_let, While: self.s_while,
                         If: self.s_if, Return: self.s_return}

    def eval(self, e, env):
        return self.eval_for[e.__class__](e, env)

    def e_num(self, e, env):
        return e.v

    def e_var(self, e, env):
        return env[e.name]

    def e_bin(self, e, env):
        return OPS[e.op](self.eval(e.a, env), self.eval(e.b, env))

    def e_call(self, e, env):
        return self.call(e.fn, [self.eval(a, env) for a in e.args])

    def call(self, name, args):
        f = self.funcs[name]
        env = dict(zip(f.params, args))
        try:
            self.run(f.body, env)
        except ReturnValue as r:
            return r.v
        return 0

    def run(self, stmts, env):
        for s in stmts:
            self.steps += 1
            self.exec_for[s.__class__](s, env)

    def s_let(self, s, env):
        env[s.name] = self.eval(s.e, env)

    def s_while(self, s, env):
        while self.eval(s.cond, env):
            self.run(s.body, env)

    def s_if(self, s, env):
        self.run(s.then if self.eval(s.cond, env) else s.other, env)

    def s_return(self, s, env):
        raise ReturnValue(self.eval(s.e, env))


def main(n, seed):
    h = 0
    for r in range(4):
        funcs = Parser(tokenize(PROGRAM)).program()
        it = Interpreter(funcs)
        v = it.call("main", [n + r, seed + r])
        h = mix(h, v)
        h = mix(h, it.steps)
    print("steps", it.steps)
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 5)
