"""A warm process that loads nothing, says it is ready, then answers the first request as told
by its first line of input: `mute` never answers, `refuse` answers with an error."""

import json
import os
import sys
import time

reply = os.fdopen(int(sys.argv[1]), "w")
mode = "refuse" if "refuse" in sys.stdin.readline() else "mute"
reply.write(json.dumps({"ready": True}) + "\n")
reply.flush()
for _line in sys.stdin:
    if mode == "mute":
        time.sleep(3600)
    reply.write(json.dumps({"error": "OSError: [Errno 12] Cannot allocate memory"}) + "\n")
    reply.flush()
