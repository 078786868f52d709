"""Run a command and report its own wall time and peak memory: ``python -S peakmem.py OUT.json COMMAND...``.

Linux keeps a process's peak RSS across ``exec`` and starts a forked child from its parent's, so a child forked
straight from the (large) benchmark process would report the benchmark's memory, not its own. This launcher is a
small fresh interpreter that forks the command itself, like ``/usr/bin/time``; the command's ``ru_maxrss`` is then
its own. Kept free of imports beyond the standard library so it starts in milliseconds.
"""

import json
import os
import sys
import time


def main() -> int:
    out, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as file:
        json.dump({"seconds": seconds, "max_rss_kb": usage.ru_maxrss, "returncode": code}, file)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
