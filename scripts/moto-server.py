"""moto's S3 server with requests handled one at a time, for the tests.

moto 5.2.5 checks a PutObject's If-Match (and If-None-Match) and then
stores the object in a separate step, with nothing held between the two
(moto/s3/responses.py, put_object), and its server handles each request on
its own thread. Two conditional puts racing from one ETag can therefore
both succeed, when the interpreter switches threads between one's check and
its write: the conformance suite's compare-and-swap race then loses an
update now and then. Real S3 makes the check and the write one step.
Handling one request at a time gives moto the same guarantee.

Usage: python scripts/moto-server.py -H 127.0.0.1 -p PORT (moto.server's
arguments).
"""

import sys
import threading

from moto import server
from moto.moto_server import werkzeug_app

_one_at_a_time = threading.Lock()
_dispatch = werkzeug_app.DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _one_at_a_time:
        return _dispatch(self, environ, start_response)


werkzeug_app.DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main(sys.argv[1:])
