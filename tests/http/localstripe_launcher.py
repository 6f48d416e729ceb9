"""Run localstripe's aiohttp app on 127.0.0.1:<port> with persistence disabled.

Usage: python localstripe_launcher.py PORT

localstripe (GPL, a test-only dependency, never imported by flowkit itself) binds all
interfaces and pickles its store to /tmp/localstripe.pickle after every write; parallel
instances would clobber each other. Here the store stays in memory and the app listens on
loopback only.
"""

import sys

from aiohttp import web
from localstripe import resources
from localstripe.server import app


def _no_persistence(self: object) -> None:
    return None


resources.Store.dump_to_disk = _no_persistence
resources.Store.try_load_from_disk = _no_persistence

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
