"""String workload: generated text lines split, joined, searched, case-
mapped, translated, formatted with %, str.format and f-strings, run-length
encoded and decoded, quoted into CSV and parsed back, and word-wrapped.

  python strings.py [LINES] [SEED]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima "
         "mike november oscar papa quebec romeo sierra tango uniform victor whiskey "
         "xray yankee zulu the of and to in is it that was for on are as with").split()
ROT = str.maketrans("abcdefghijklmnopqrstuvwxyz", "nopqrstuvwxyzabcdefghijklm")


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


def strsum(s):
    v = 0
    for ch in s:
        v = (v * 131 + ord(ch)) & 0xFFFFFFFF
    return v


class Rng:
    def __init__(self, seed):
        self.state = seed & 0x7FFFFFFF

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 4) % n


def rle_encode(s):
    out = []
    i, n = 0, len(s)
    while i < n:
        j = i
        while j < n and s[j] == s[i]:
            j += 1
        out.append("%d%s" % (j - i, s[i]) if j - i > 1 else s[i])
        i = j
    return "".join(out)


def rle_decode(s):
    out = []
    num = ""
    for ch in s:
        if ch.isdigit():
            num += ch
        else:
            out.append(ch * (int(num) if num else 1))
            num = ""
    return "".join(out)


def csv_quote(fields):
    out = []
    for f in fields:
        if "," in f or '"' in f or " " in f:
            out.append('"' + f.replace('"', '""') + '"')
        else:
            out.append(f)
    return ",".join(out)


def csv_parse(line):
    fields, cur, i, n = [], [], 0, len(line)
    quoted = False
    while i < n:
        ch = line[i]
        if quoted:
            if ch == '"':
                if i + 1 < n and line[i + 1] == '"':
                    cur.append('"')
                    i += 1
                else:
                    quoted = False
            else:
                cur.append(ch)
        elif ch == '"':
            quoted = True
        elif ch == ",":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    fields.append("".join(cur))
    return fields


def wrap(text, width):
    lines, cur, size = [], [], 0
    for w in text.split():
        if cur and size + 1 + len(w) > width:
            lines.append(" ".join(cur))
            cur, size = [], 0
        size += len(w) + (1 if cur else 0)
        cur.append(w)
    if cur:
        lines.append(" ".join(cur))
    return lines


def main(nlines, seed):
    rng = Rng(seed)
    h = 0
    for i in range(nlines):
        words = [WORDS[rng.below(len(WORDS))] for _ in range(6 + rng.below(10))]
        line = " ".join(words)
        if i % 3 == 0:
            line = line.title()
        elif i % 3 == 1:
            line = line.upper()
        low = line.lower()
        h = mix(h, low.count("a") * 7 + low.find("echo") + len(low.split("o")))
        h = mix(h, strsum(low.translate(ROT)[::3]))
        fields = [words[0], "%s, %s" % (words[1], words[2]), 'say "%s"' % words[3], str(i)]
        row = csv_quote(fields)
        back = csv_parse(row)
        if back != fields:
            raise SystemExit("csv round trip failed: %r %r" % (row, back))
        h = mix(h, strsum(row))
        squashed = "".join(w[0] * (1 + len(w) % 4) for w in words)
        enc = rle_encode(squashed)
        if rle_decode(enc) != squashed:
            raise SystemExit("rle round trip failed")
        h = mix(h, len(enc))
        rep = "{0:>8}|{1:<10}|{2:^6}".format(words[0], words[-1], len(words))
        rep2 = f"{i:06d}:{low[:12]!r}:{len(line):x}"
        h = mix(h, strsum(rep) ^ strsum(rep2))
        if i % 50 == 0:
            para = " ".join([line] * 8)
            for ln in wrap(para, 30 + i % 40):
                h = mix(h, len(ln))
        h = mix(h, strsum(low.replace("the", "THE").strip().capitalize()[:20]))
        if low.startswith(("a", "e")) or low.endswith("zulu"):
            h = mix(h, 1)
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 2024)
