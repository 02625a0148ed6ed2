"""pyinfra's equivalent of bench/playbook/site.yml (the ~10-task benchmark playbook), for bench/run.

Run as `pyinfra -y INVENTORY.py bench/pyinfra/deploy.py --data base=DIR`. Every node works
below BASE/NAME because the loopback hosts share one filesystem. Task by task:

 1. file state=directory          -> files.directory
 2. copy content=                 -> files.put from an in-memory file
 3. lineinfile regexp/line/create -> files.line (creates the file when missing)
 4. shell uname -s + register     -> the Kernel fact (pyinfra runs `uname -s` for it)
 5. copy when kernel == Linux     -> a Python `if` on that fact around files.put
 6. template hosts.j2             -> files.template (templates/hosts.pyinfra.j2: the same
                                     lines, from pyinfra's inventory instead of hostvars)
 7. copy loop [alpha,beta,gamma]  -> a Python loop of files.put
 8. command creates=              -> server.shell guarded by `test -e` (runs once)
 9. stat + 10. assert             -> python.call at execution time: the File fact of the config
                                     file, checked (facts read while planning would predate it)
The playbook's second play (an assert on localhost over every node's registered kernel) has
no counterpart: a pyinfra deploy has no step between hosts; step 4 already failed a node that
is not Linux.
"""

import io
import os

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.facts.server import Kernel
from pyinfra.operations import files, python, server

root = f"{host.data.base}/{host.name}"
here = os.path.dirname(os.path.abspath(__file__))

files.directory(name="Directory", path=f"{root}/etc", mode="755")
files.put(
    name="Config file",
    src=io.StringIO(f"name={host.name}\n"),
    dest=f"{root}/etc/app.conf",
    mode="644",
)
files.line(name="Setting", path=f"{root}/etc/port.conf", line="^port=", replace="port=8080")
if host.get_fact(Kernel) == "Linux":
    files.put(name="Linux only", src=io.StringIO("yes\n"), dest=f"{root}/linux")
files.template(
    name="Hosts file",
    src=os.path.join(here, "templates", "hosts.pyinfra.j2"),
    dest=f"{root}/etc/hosts",
)
for item in ("alpha", "beta", "gamma"):
    files.put(name=f"Package marker {item}", src=io.StringIO(f"{item}\n"), dest=f"{root}/{item}.pkg")
server.shell(
    name="Initialise once",
    commands=[f"test -e {root}/initialised || touch {root}/initialised"],
)


def config_present():
    conf = host.get_fact(File, path=f"{root}/etc/app.conf")
    assert conf, f"{root}/etc/app.conf missing"


python.call(name="Stat config + config present", function=config_present)
