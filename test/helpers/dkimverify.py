#!/usr/bin/python3
# Debian python3-dkim's `dkimverify` (its own main, unchanged: message on stdin, --index N,
# prints "signature ok" / exit 1), with dnspython's default resolver pointed at the test's
# loopback DNS server, given as the first argument (its port). Nothing else is changed.
import sys

import dns.resolver

port = int(sys.argv.pop(1))
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ['127.0.0.1']
resolver.port = port
dns.resolver.default_resolver = resolver

from dkim.dkimverify import main  # noqa: E402

sys.exit(main())
