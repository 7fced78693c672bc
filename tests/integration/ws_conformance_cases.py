"""RFC 6455 conformance cases for a WebSocket server, after Autobahn|Testsuite.

Autobahn|Testsuite is the usual independent check, but it is Python 2 only
and ships through PyPI and Docker Hub, neither of which a build here can
reach; Debian's python3-autobahn is the library without the testsuite. So
this module re-states Autobahn's fuzzingclient categories from the RFC, case
by case, each with the outcome the RFC allows:
  1 framing   2 ping/pong   3 reserved bits   4 reserved opcodes
  5 fragmentation   6 UTF-8   7 close handling   9 large messages
  X what the RFC asks of a server that Autobahn does not send (unmasked frames)
Case numbers follow Autobahn's where a case has a counterpart there; the
client that runs them is ws_conformance_client.py.
"""

from ws_conformance_client import (Case, Expect, F, Raw, Send, Sync, WaitOpen, binary, failed,
                                   ok_echo, pong, text)
from wsframes import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, encode_frame

HELLO = b"Hello, world!"
SIZES = (0, 125, 126, 127, 128, 65535, 65536)


def _framing():
    cases = []
    for group, opcode, fill, name in (("1.1", TEXT, b"*", "text"), ("1.2", BINARY, b"\xfe", "binary")):
        for i, n in enumerate(SIZES, 1):
            p = fill * n
            cases.append(Case("%s.%d" % (group, i), "%s message, payload %d" % (name, n),
                              [Send(F(opcode, p))], ok_echo((name, p))))
        p = fill * 65536
        cases.append(Case("%s.8" % group, "%s message, payload 65536, written in 997-byte chops" % name,
                          [Send(F(opcode, p), chop=997, pause=0.0005)], ok_echo((name, p))))
    return cases


def _pings():
    pings10 = [F(PING, b"payload-%d" % i) for i in range(10)]
    return [
        Case("2.1", "ping without payload", [Send(F(PING))], ok_echo(pong())),
        Case("2.2", "ping with a text payload", [Send(F(PING, HELLO))], ok_echo(pong(HELLO))),
        Case("2.3", "ping with a binary payload",
             [Send(F(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))],
             ok_echo(pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))),
        Case("2.4", "ping with a 125-byte payload", [Send(F(PING, b"\xfe" * 125))],
             ok_echo(pong(b"\xfe" * 125))),
        Case("2.5", "ping with a 126-byte payload (control frames carry at most 125)",
             [Send(F(PING, b"\xfe" * 126))], failed(1002)),
        Case("2.6", "ping with a 125-byte payload, written one byte at a time",
             [Send(F(PING, b"\xfe" * 125), chop=1, pause=0.0005)], ok_echo(pong(b"\xfe" * 125))),
        Case("2.7", "unsolicited pong without payload", [Send(F(PONG))], ok_echo()),
        Case("2.8", "unsolicited pong with payload", [Send(F(PONG, b"unsolicited"))], ok_echo()),
        Case("2.9", "unsolicited pong, then ping", [Send(F(PONG, b"unsolicited"), F(PING, HELLO))],
             ok_echo(pong(HELLO))),
        Case("2.10", "10 pings in one write", [Send(*pings10)],
             ok_echo(*[pong(f.payload) for f in pings10])),
        Case("2.11", "10 pings, written in 3-byte chops", [Send(*pings10, chop=3, pause=0.0005)],
             ok_echo(*[pong(f.payload) for f in pings10])),
    ]


def _reserved_bits():
    return [
        Case("3.1", "text with RSV1 (no extension negotiated)", [Send(F(TEXT, HELLO, rsv=4))],
             failed(1002)),
        Case("3.2", "text, text with RSV2, ping, in one write",
             [Send(F(TEXT, HELLO), F(TEXT, HELLO, rsv=2), F(PING))],
             failed(1002, ok=[text(HELLO)], non_strict=[[]])),
        Case("3.3", "text, echo awaited, then text with RSV3, ping",
             [Send(F(TEXT, HELLO)), Sync(1), Send(F(TEXT, HELLO, rsv=3), F(PING))],
             failed(1002, ok=[text(HELLO)])),
        Case("3.4", "text, text with RSV4, ping, in 2-byte chops",
             [Send(F(TEXT, HELLO), F(TEXT, HELLO, rsv=4), F(PING), chop=2, pause=0.0005)],
             failed(1002, ok=[text(HELLO)], non_strict=[[]])),
        Case("3.5", "binary with RSV5", [Send(F(BINARY, b"\x00\xff\xfe", rsv=5))], failed(1002)),
        Case("3.6", "ping with RSV6", [Send(F(PING, HELLO, rsv=6))], failed(1002)),
        Case("3.7", "close with RSV7", [Send(F(CLOSE, close_payload(1000), rsv=7))],
             failed(1002)),
    ]


def _reserved_opcodes():
    cases = []
    for group, opcodes in (("4.1", (3, 4, 5, 6, 7)), ("4.2", (11, 12, 13, 14, 15))):
        a, b, c, d, e = opcodes
        cases += [
            Case(group + ".1", "reserved opcode %d, no payload" % a, [Send(F(a))], failed(1002)),
            Case(group + ".2", "reserved opcode %d with payload" % b, [Send(F(b, b"reserved"))],
                 failed(1002)),
            Case(group + ".3", "text, reserved opcode %d, ping, in one write" % c,
                 [Send(F(TEXT, HELLO), F(c), F(PING))],
                 failed(1002, ok=[text(HELLO)], non_strict=[[]])),
            Case(group + ".4", "text, reserved opcode %d with payload, ping, in one write" % d,
                 [Send(F(TEXT, HELLO), F(d, b"reserved"), F(PING))],
                 failed(1002, ok=[text(HELLO)], non_strict=[[]])),
            Case(group + ".5", "text, echo awaited, then reserved opcode %d, ping" % e,
                 [Send(F(TEXT, HELLO)), Sync(1), Send(F(e, b"reserved"), F(PING))],
                 failed(1002, ok=[text(HELLO)])),
        ]
    return cases


def _fragmentation():
    f1, f2 = b"fragment1", b"fragment2"
    frags = [F(TEXT, f1, fin=False), F(CONT, f2)]
    with_ping = [F(TEXT, f1, fin=False), F(PING, b"ping"), F(CONT, f2)]
    five = [b"fragment%d" % i for i in range(1, 6)]
    five_frames = [F(TEXT, five[0], fin=False), F(CONT, five[1], fin=False), F(PING, b"ping-1"),
                   F(CONT, five[2], fin=False), F(CONT, five[3], fin=False), F(PING, b"ping-2"),
                   F(CONT, five[4])]
    orphan_fin = [F(CONT, f1), F(TEXT, HELLO)]
    orphan = [F(CONT, f1, fin=False), F(TEXT, HELLO)]
    return [
        Case("5.1", "ping in two fragments", [Send(F(PING, f1, fin=False), F(CONT, f2))],
             failed(1002)),
        Case("5.2", "pong in two fragments", [Send(F(PONG, f1, fin=False), F(CONT, f2))],
             failed(1002)),
        Case("5.3", "text in two fragments", [Send(*frags)], ok_echo(text(f1 + f2))),
        Case("5.4", "text in two fragments, in 1-byte chops", [Send(*frags, chop=1, pause=0.0005)],
             ok_echo(text(f1 + f2))),
        Case("5.5", "text in two fragments, written 50 ms apart",
             [Send(frags[0]), WaitOpen("between fragments", 0.05), Send(frags[1])],
             ok_echo(("open-after", "between fragments"), text(f1 + f2))),
        Case("5.6", "text in two fragments with a ping between", [Send(*with_ping)],
             ok_echo(pong(b"ping"), text(f1 + f2))),
        Case("5.7", "text in two fragments with a ping between, in 1-byte chops",
             [Send(*with_ping, chop=1, pause=0.0005)], ok_echo(pong(b"ping"), text(f1 + f2))),
        Case("5.8", "text in two fragments with a ping between, pong awaited",
             [Send(*with_ping[:2]), Sync(1), Send(with_ping[2])],
             ok_echo(pong(b"ping"), text(f1 + f2))),
        Case("5.9", "continuation (FIN) with no message open, then text", [Send(*orphan_fin)],
             failed(1002)),
        Case("5.10", "continuation (FIN) with no message open, then text, in 1-byte chops",
             [Send(*orphan_fin, chop=1, pause=0.0005)], failed(1002)),
        Case("5.11", "continuation (FIN) with no message open, text written later",
             [Send(orphan_fin[0]), WaitOpen("after continuation", 0.05), Send(orphan_fin[1])],
             failed(1002, non_strict=[[("open-after", "after continuation")]])),
        Case("5.12", "continuation (no FIN) with no message open, then text", [Send(*orphan)],
             failed(1002)),
        Case("5.13", "continuation (no FIN) with no message open, then text, in 1-byte chops",
             [Send(*orphan, chop=1, pause=0.0005)], failed(1002)),
        Case("5.14", "continuation (no FIN) with no message open, text written later",
             [Send(orphan[0]), WaitOpen("after continuation", 0.05), Send(orphan[1])],
             failed(1002, non_strict=[[("open-after", "after continuation")]])),
        Case("5.15", "a complete fragmented text, then a continuation with no message open",
             [Send(F(TEXT, f1, fin=False), F(CONT, f2), F(CONT, b"fragment3", fin=False),
                   F(TEXT, b"fragment4"))],
             failed(1002, ok=[text(f1 + f2)], non_strict=[[]])),
        Case("5.16", "continuation (no FIN) opening, then text, twice",
             [Send(*([F(CONT, f1, fin=False), F(TEXT, f2, fin=False), F(CONT, b"fragment3")] * 2))],
             failed(1002)),
        Case("5.17", "continuation (FIN) opening, then text, twice",
             [Send(*([F(CONT, f1), F(TEXT, f2, fin=False), F(CONT, b"fragment3")] * 2))],
             failed(1002)),
        Case("5.18", "text (no FIN), then a new text while it is open",
             [Send(F(TEXT, f1, fin=False), F(TEXT, f2))], failed(1002)),
        Case("5.19", "text in five fragments, pings after the 2nd and 4th, pongs awaited",
             [Send(*five_frames[:3]), Sync(1), Send(*five_frames[3:6]), Sync(2),
              Send(five_frames[6])],
             ok_echo(pong(b"ping-1"), pong(b"ping-2"), text(b"".join(five)))),
        Case("5.20", "text in five fragments with two pings between, in 1-byte chops",
             [Send(*five_frames, chop=1, pause=0.0002)],
             ok_echo(pong(b"ping-1"), pong(b"ping-2"), text(b"".join(five)))),
        Case("5.21", "binary in three fragments",
             [Send(F(BINARY, b"\x00\x01", fin=False), F(CONT, b"\xfe", fin=False),
                   F(CONT, b"\xff\x80"))],
             ok_echo(binary(b"\x00\x01\xfe\xff\x80"))),
        Case("5.22", "binary in two fragments, then a new binary while it is open",
             [Send(F(BINARY, b"\x00", fin=False), F(BINARY, b"\x01"))], failed(1002)),
    ]


# UTF-8 vectors, after Markus Kuhn's decoder stress test (Autobahn 6.5-6.23).
KOSME = "κόσμε".encode("utf-8")
VALID_UTF8 = [
    ("κόσμε", KOSME),
    ("Hello-µ@ßöäüàá-UTF-8!!", "Hello-µ@ßöäüàá-UTF-8!!".encode("utf-8")),
    ("U+0000", b"\x00"),
    ("U+007F", b"\x7f"),
    ("U+0080", b"\xc2\x80"),
    ("U+07FF", b"\xdf\xbf"),
    ("U+0800", b"\xe0\xa0\x80"),
    ("U+D7FF", b"\xed\x9f\xbf"),
    ("U+E000", b"\xee\x80\x80"),
    ("U+FFFD", b"\xef\xbf\xbd"),
    ("U+FFFE (a noncharacter, still valid UTF-8)", b"\xef\xbf\xbe"),
    ("U+FFFF", b"\xef\xbf\xbf"),
    ("U+10000", b"\xf0\x90\x80\x80"),
    ("U+10FFFF", b"\xf4\x8f\xbf\xbf"),
]
INVALID_UTF8 = [
    ("U+110000 (above the Unicode range)", b"\xf4\x90\x80\x80"),
    ("lead byte F5", b"\xf5\x80\x80\x80"),
    ("lead byte F7 (U+1FFFFF form)", b"\xf7\xbf\xbf\xbf"),
    ("5-byte form", b"\xf8\x88\x80\x80\x80"),
    ("6-byte form", b"\xfc\x84\x80\x80\x80\x80"),
    ("byte FE", b"\xfe"),
    ("byte FF", b"\xff"),
    ("FE FE FF FF", b"\xfe\xfe\xff\xff"),
    ("lone continuation 80", b"\x80"),
    ("lone continuation BF", b"\xbf"),
    ("continuations 80 BF 80 BF", b"\x80\xbf\x80\xbf"),
    ("2-byte lead then space", b"\xc2 "),
    ("3-byte lead then space", b"\xe0 "),
    ("4-byte lead then space", b"\xf0 "),
    ("2-byte sequence cut at the end", b"\xc2"),
    ("3-byte sequence cut at the end", b"\xe0\xa0"),
    ("4-byte sequence cut at the end", b"\xf0\x90\x80"),
    ("κόσμε cut inside its last character", KOSME[:-1]),
    ("overlong '/' in 2 bytes", b"\xc0\xaf"),
    ("overlong '/' in 3 bytes", b"\xe0\x80\xaf"),
    ("overlong '/' in 4 bytes", b"\xf0\x80\x80\xaf"),
    ("overlong U+007F (C1 BF)", b"\xc1\xbf"),
    ("overlong U+07FF in 3 bytes", b"\xe0\x9f\xbf"),
    ("overlong U+FFFF in 4 bytes", b"\xf0\x8f\xbf\xbf"),
    ("overlong NUL (C0 80)", b"\xc0\x80"),
    ("overlong NUL in 3 bytes", b"\xe0\x80\x80"),
    ("surrogate U+D800", b"\xed\xa0\x80"),
    ("surrogate U+DB7F", b"\xed\xad\xbf"),
    ("surrogate U+DB80", b"\xed\xae\x80"),
    ("surrogate U+DBFF", b"\xed\xaf\xbf"),
    ("surrogate U+DC00", b"\xed\xb0\x80"),
    ("surrogate U+DF80", b"\xed\xbe\x80"),
    ("surrogate U+DFFF", b"\xed\xbf\xbf"),
    ("surrogate pair U+D800 U+DC00", b"\xed\xa0\x80\xed\xb0\x80"),
    ("surrogate pair U+DBFF U+DFFF", b"\xed\xaf\xbf\xed\xbf\xbf"),
    ("valid text around U+110000", KOSME + b"\xf4\x90\x80\x80" + b"edited"),
]
# 2-, 3- and 4-byte characters and the last code point, for split sweeps.
SPLIT_VALID = "Ā€𝄞\U0010ffff".encode("utf-8")
SPLIT_INVALID = [("surrogate U+D800 between letters", b"a\xed\xa0\x80b"),
                 ("U+110000", b"\xf4\x90\x80\x80")]


def _utf8():
    hello = "Hello-µ@ßöäüàá-UTF-8!!".encode("utf-8")
    parts = [p.encode("utf-8") for p in ("Hello-µ@", "ßöäüàá", "-UTF-8!!")]
    cases = [
        Case("6.1.1", "empty text", [Send(F(TEXT))], ok_echo(text(b""))),
        Case("6.1.2", "text of three empty fragments",
             [Send(F(TEXT, fin=False), F(CONT, fin=False), F(CONT))], ok_echo(text(b""))),
        Case("6.1.3", "text: empty fragment, 'middle', empty fragment",
             [Send(F(TEXT, fin=False), F(CONT, b"middle", fin=False), F(CONT))],
             ok_echo(text(b"middle"))),
        Case("6.2.1", "valid UTF-8 text in one frame", [Send(F(TEXT, hello))], ok_echo(text(hello))),
        Case("6.2.2", "valid UTF-8 text fragmented at character boundaries",
             [Send(F(TEXT, parts[0], fin=False), F(CONT, parts[1], fin=False), F(CONT, parts[2]))],
             ok_echo(text(hello))),
        Case("6.2.3", "valid UTF-8 text, one byte per fragment",
             [Send(*_per_byte(hello))], ok_echo(text(hello))),
        Case("6.2.4", "κόσμε, one byte per fragment", [Send(*_per_byte(KOSME))],
             ok_echo(text(KOSME))),
        Case("6.3.1", "invalid UTF-8 text in one frame",
             [Send(F(TEXT, KOSME + b"\xf4\x90\x80\x80edited"))], failed(1007)),
        Case("6.3.2", "invalid UTF-8 text, one byte per fragment",
             [Send(*_per_byte(KOSME + b"\xf4\x90\x80\x80edited"))], failed(1007)),
    ]
    cases += _fail_fast()
    for i, (name, data) in enumerate(VALID_UTF8, 1):
        cases.append(Case("6.5.%d" % i, "valid UTF-8: %s" % name, [Send(F(TEXT, data))],
                          ok_echo(text(data))))
    for i, (name, data) in enumerate(INVALID_UTF8, 1):
        cases.append(Case("6.6.%d" % i, "invalid UTF-8: %s" % name, [Send(F(TEXT, data))],
                          failed(1007)))
    for i in range(1, len(SPLIT_VALID)):
        cases.append(Case("6.7.%d" % i, "valid 2/3/4-byte characters, fragments split at byte %d" % i,
                          [Send(F(TEXT, SPLIT_VALID[:i], fin=False), F(CONT, SPLIT_VALID[i:]))],
                          ok_echo(text(SPLIT_VALID))))
    cases.append(Case("6.7.%d" % len(SPLIT_VALID), "valid 2/3/4-byte characters, one byte per fragment",
                      [Send(*_per_byte(SPLIT_VALID))], ok_echo(text(SPLIT_VALID))))
    n = 0
    for name, data in SPLIT_INVALID:
        for i in range(1, len(data)):
            n += 1
            cases.append(Case("6.8.%d" % n, "invalid UTF-8 (%s), fragments split at byte %d" % (name, i),
                              [Send(F(TEXT, data[:i], fin=False), F(CONT, data[i:]))], failed(1007)))
    cases.append(Case("6.8.%d" % (n + 1), "text ending inside a character, across fragments",
                      [Send(F(TEXT, KOSME, fin=False), F(CONT, b"\xce"))], failed(1007)))
    return cases


def _per_byte(data):
    frames = [F(CONT, data[i:i + 1], fin=False) for i in range(len(data))]
    frames[0].opcode = TEXT
    frames[-1].fin = True
    return frames


def _fail_fast():
    """Autobahn 6.4: invalid UTF-8 in the middle of a message. Failing at
    once is OK; failing only when the message ends is NON-STRICT."""
    p1 = KOSME
    p2 = b"\xf4\x90\x80\x80"   # invalid at its 2nd byte (> U+10FFFF)
    p3 = b"edited"
    full = p1 + p2 + p3
    one_frame = encode_frame(TEXT, full, mask=b"\x5a\x13\xc4\x9e")
    h = len(one_frame) - len(full)
    strict = [("open-after", "A")]
    lax = [("open-after", "A"), ("open-after", "B")]
    return [
        Case("6.4.1", "invalid UTF-8 in the 2nd of 3 fragments, written apart",
             [Send(F(TEXT, p1, fin=False)), WaitOpen("A"), Send(F(CONT, p2, fin=False)),
              WaitOpen("B"), Send(F(CONT, p3))],
             failed(1007, ok=strict, non_strict=[lax])),
        Case("6.4.2", "invalid UTF-8 at the first byte of the 2nd fragment, written apart",
             [Send(F(TEXT, p1 + p2[:1], fin=False)), WaitOpen("A"), Send(F(CONT, p2[1:], fin=False)),
              WaitOpen("B"), Send(F(CONT, p3))],
             failed(1007, ok=strict, non_strict=[lax])),
        Case("6.4.3", "invalid UTF-8 inside one frame, its payload written in 3 parts",
             [Raw(one_frame[:h + len(p1)]), WaitOpen("A"),
              Raw(one_frame[h + len(p1):h + len(p1) + len(p2)]), WaitOpen("B"),
              Raw(one_frame[h + len(p1) + len(p2):])],
             failed(1007, ok=strict, non_strict=[lax])),
        Case("6.4.4", "invalid UTF-8 inside one frame, cut right after the bad byte",
             [Raw(one_frame[:h + len(p1)]), WaitOpen("A"),
              Raw(one_frame[h + len(p1):h + len(p1) + 2]), WaitOpen("B"),
              Raw(one_frame[h + len(p1) + 2:])],
             failed(1007, ok=strict, non_strict=[lax])),
    ]


def _close():
    cases = [
        Case("7.1.1", "text, then close", [Send(F(TEXT, HELLO), F(CLOSE, close_payload(1000)))],
             ok_echo(text(HELLO)), closes=True),
        Case("7.1.2", "close, then close again", [Send(F(CLOSE, close_payload(1000)),
                                                      F(CLOSE, close_payload(1000)))],
             ok_echo(), closes=True),
        Case("7.1.3", "close, then ping (must not be answered)",
             [Send(F(CLOSE, close_payload(1000)), F(PING, HELLO))], ok_echo(), closes=True),
        Case("7.1.4", "close, then text (must not be echoed)",
             [Send(F(CLOSE, close_payload(1000)), F(TEXT, HELLO))], ok_echo(), closes=True),
        Case("7.1.5", "text fragment, close, then the last fragment",
             [Send(F(TEXT, b"fragment1", fin=False), F(CLOSE, close_payload(1000)),
                   F(CONT, b"fragment2"))], ok_echo(), closes=True),
        Case("7.1.6", "256 KiB text, close, ping, in one write",
             [Send(F(TEXT, b"*" * 262144), F(CLOSE, close_payload(1000)), F(PING, HELLO))],
             Expect(ok=[text(b"*" * 262144)], non_strict=[[]]), closes=True),
        Case("7.3.1", "close without payload", [Send(F(CLOSE))], ok_echo(close=(None, 1000)),
             closes=True),
        Case("7.3.2", "close with a 1-byte payload", [Send(F(CLOSE, b"\x03"))], failed(1002),
             closes=True),
        Case("7.3.3", "close 1000 without reason", [Send(F(CLOSE, close_payload(1000)))],
             ok_echo(), closes=True),
        Case("7.3.4", "close 1000 with a reason", [Send(F(CLOSE, close_payload(1000, b"Hello World!")))],
             ok_echo(), closes=True),
        Case("7.3.5", "close 1000 with a 123-byte reason (125-byte payload)",
             [Send(F(CLOSE, close_payload(1000, b"*" * 123)))], ok_echo(), closes=True),
        Case("7.3.6", "close 1000 with a 124-byte reason (126-byte payload)",
             [Send(F(CLOSE, close_payload(1000, b"*" * 124)))], failed(1002), closes=True),
        Case("7.5.1", "close 1000 with an invalid UTF-8 reason",
             [Send(F(CLOSE, close_payload(1000, KOSME + b"\xf4\x90\x80\x80edited")))],
             failed(1007), closes=True),
    ]
    # Codes a peer may send (RFC 6455 7.4, IANA registry: 1012-1014 are
    # registered since; 1004-1006 and 1015 must never be on the wire).
    for i, code in enumerate((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                              1012, 1013, 1014, 3000, 3999, 4000, 4999), 1):
        cases.append(Case("7.7.%d" % i, "close with valid code %d" % code,
                          [Send(F(CLOSE, close_payload(code)))], ok_echo(close=(1000, code)),
                          closes=True))
    for i, code in enumerate((0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999), 1):
        cases.append(Case("7.9.%d" % i, "close with invalid code %d" % code,
                          [Send(F(CLOSE, close_payload(code)))], failed(1002), closes=True))
    for i, code in enumerate((5000, 65535), 1):
        cases.append(Case("7.13.%d" % i, "close with out-of-range code %d" % code,
                          [Send(F(CLOSE, close_payload(code)))], failed(1002), closes=True))
    return cases


def _large():
    mib = 1 << 20
    cases = []
    for group, opcode, name in (("9.1", TEXT, "text"), ("9.2", BINARY, "binary")):
        for i, n in enumerate((64 * 1024, mib, 4 * mib), 1):
            p = _fill(name, n)
            cases.append(Case("%s.%d" % (group, i), "%s message of %d bytes in one frame" % (name, n),
                              [Send(F(opcode, p))], ok_echo((name, p)), budget=15.0))
    for group, opcode, name in (("9.3", TEXT, "text"), ("9.4", BINARY, "binary")):
        p = _fill(name, mib)
        for i, size in enumerate((64, 1024, 65536), 1):
            frames = [F(CONT, p[o:o + size], fin=False) for o in range(0, mib, size)]
            frames[0].opcode = opcode
            frames[-1].fin = True
            cases.append(Case("%s.%d" % (group, i), "1 MiB %s message in %d-byte frames" % (name, size),
                              [Send(*frames)], ok_echo((name, p)), budget=15.0))
    for group, opcode, name, chop in (("9.5", TEXT, "text", 1000), ("9.6", BINARY, "binary", 64)):
        p = _fill(name, mib)
        cases.append(Case(group + ".1", "1 MiB %s message in one frame, written in %d-byte chops" % (
            name, chop), [Send(F(opcode, p), chop=chop, pause=0)], ok_echo((name, p)), budget=15.0))
    return cases


def _fill(kind, n):
    if kind == "text":
        unit = "Größe-κόσμε-𝄞-".encode("utf-8")   # 1-, 2-, 3- and 4-byte characters
        whole = unit * (n // len(unit))
        return whole + b"*" * (n - len(whole))
    return bytes(range(256)) * (n // 256) + bytes(n % 256)


def _beyond_autobahn():
    return [
        Case("X.1", "unmasked text frame from the client (RFC 6455 5.1: MUST fail)",
             [Send(F(TEXT, HELLO, masked=False))], failed(1002)),
        Case("X.2", "unmasked ping from the client", [Send(F(PING, HELLO, masked=False))],
             failed(1002)),
        Case("X.3", "text, then unmasked text, in one write",
             [Send(F(TEXT, HELLO), F(TEXT, HELLO, masked=False))],
             failed(1002, ok=[text(HELLO)], non_strict=[[]])),
    ]


def all_cases():
    return (_framing() + _pings() + _reserved_bits() + _reserved_opcodes() + _fragmentation()
            + _utf8() + _close() + _large() + _beyond_autobahn())
