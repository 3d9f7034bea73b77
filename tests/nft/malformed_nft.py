"""Malformed nft input: (text, line svctrace reports, words its message must hold, whether
nft itself rejects the file). Shared by tests/nft/test_parse_errors.py (svctrace's located
errors) and tests/kernel/test_nft_forms.py (the real `nft -c -f` agrees it is malformed)."""

T = 'table ip t {\n'
CHAIN = T + '\tchain c {\n'
SETS = T + '\tset s {\n\t\ttype ipv4_addr\n'
FCMD = 'add table ip t\nadd chain ip t c\n'

# id → (text, line, message parts, nft rejects it too)
MALFORMED: dict[str, tuple[str, int, tuple[str, ...], bool]] = {
    "missing-brace": (CHAIN + '\t\taccept\n', 2, ('missing "}" closing chain c',), True),
    "missing-table-brace": (CHAIN + '\t\taccept\n\t}\n', 1,
                            ('missing "}" closing table ip t',), True),
    "bad-priority": (CHAIN + '\t\ttype filter hook input priority frob; policy accept;\n'
                     '\t}\n}\n', 3, ('bad priority "frob"',), True),
    "hook-without-priority": (CHAIN + '\t\ttype filter hook input; policy accept;\n\t}\n}\n',
                              3, ('hook input without a priority',), True),
    "bad-policy": (CHAIN + '\t\ttype filter hook input priority 0; policy maybe;\n\t}\n}\n',
                   3, ('bad policy "maybe"',), True),
    "unknown-family": ('table ipx t {\n}\n', 1, ('unknown family "ipx"',), True),
    "unterminated-string": (T + '\tcomment "rules for\n}\n', 2, ('unterminated string',), True),
    "unterminated-string-in-rule": (CHAIN + '\t\tiifname "eth0 accept\n\t}\n}\n', 3,
                                    ('unterminated string', 'iifname "eth0 accept'), True),
    "bad-set-element": (SETS + '\t\telements = { 10.0.0.1, 10.0.0.300 }\n\t}\n}\n', 4,
                        ('bad IPv4 address "10.0.0.300"',), True),
    "bad-prefix": (CHAIN + '\t\tip saddr 10.0.0.0/33 accept\n\t}\n}\n', 3,
                   ('bad prefix "10.0.0.0/33"',), True),
    "bad-port": (CHAIN + '\t\ttcp dport http-alternative accept\n\t}\n}\n', 3,
                 ('bad port "http-alternative"',), True),
    "map-element-without-value": (T + '\tmap m {\n\t\ttype ipv4_addr : verdict\n'
                                  '\t\telements = { 10.0.0.1 }\n\t}\n}\n', 4,
                                  ('map element without a value',), True),
    "unknown-set-flag": (SETS + '\t\tflags interval,sparkly\n\t}\n}\n', 4,
                         ('unknown set flag "sparkly"',), True),
    "bad-set-timeout": (SETS + '\t\ttimeout forever\n\t}\n}\n', 4,
                        ('bad timeout "forever"',), True),
    "bad-numgen-modulus": (CHAIN + '\t\tnumgen random mod x vmap { 0 : accept }\n\t}\n}\n', 3,
                           ('not a number "x"',), True),
    "unknown-table-item": (T + '\tbananas\n}\n', 2, ('unexpected "bananas" in table ip t',),
                           True),
    "unknown-command": ('frobnicate table ip t\n', 1, ('unknown command "frobnicate"',), True),
    "rule-for-missing-chain": (FCMD + 'add rule ip t nochain accept\n', 3,
                               ('chain ip t nochain does not exist',), True),
    "element-for-missing-set": (FCMD + 'add element ip t nos { 10.0.0.1 }\n', 3,
                                ('set ip t nos does not exist',), True),
    "chain-in-missing-table": ('add chain ip nosuch c\n', 1,
                               ('table ip nosuch does not exist',), True),
    "delete-missing-element": (FCMD + 'add set ip t s { type ipv4_addr ; }\n'
                               'add element ip t s { 10.0.0.1 }\n'
                               'delete element ip t s { 10.0.0.2 }\n', 5,
                               ("has no element '10.0.0.2'",), True),
    "rule-at-a-handle": (FCMD + 'add rule ip t c position 7 accept\n', 3,
                         ('rule handles of `nft -f` input are not known',), True),
    "bad-rule-index": (FCMD + 'add rule ip t c index 4 accept\n', 3,
                       ('bad rule index "4"',), True),
    "create-existing-chain": (FCMD + 'create chain ip t c\n', 3,
                              ('create chain ip t c: it already exists',), True),
    "create-existing-table": ('table ip t {\n}\ncreate table ip t\n', 3,
                              ('create table ip t: it already exists',), True),
    "insert-a-chain": (FCMD + 'insert chain ip t d\n', 3, ('cannot insert "chain"',), True),
    "define-is-not-read": ('define x = 10.0.0.1\n', 1, ('"define" is not supported',), False),
}
