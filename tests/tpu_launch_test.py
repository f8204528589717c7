"""launch/tpu_pod.py against a fake `gcloud`: every way out deletes what it created.

The fake gcloud (first on PATH) logs each call and plays a scenario: a step that
fails, a step that hangs (the test then sends the launcher SIGINT, SIGTERM or
SIGHUP), attach outputs and exit statuses (a dropped ssh is 255, a preempted run
75), node states. The launcher runs in this process (its signal handlers too).
launch/tpu_worker.sh's start / attach run for real on this machine.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO_ROOT
from launchers_test import _load_launcher

tpu_pod = _load_launcher("tpu_pod")
tc = tpu_pod.tc

_FAKE_GCLOUD = r'''#!{python} -S
import json, os, sys, time
d = os.environ["FAKE_GCLOUD_DIR"]
with open(os.path.join(d, "scenario.json")) as f:
  scenario = json.load(f)
argv = sys.argv[1:]
verb = argv[3]
created = os.path.exists(os.path.join(d, "created"))
if verb == "ssh":
  command = next(a for a in argv if a.startswith("--command=")).split("=", 1)[1]
  step = "mkdir" if "mkdir" in command else command.split("tpu_worker.sh ")[1].split()[0]
elif verb == "scp":
  step = "fetch" if "--worker=0" in argv else "copy"
elif verb == "describe":
  step = ("wait" if argv[2] == "queued-resources" else "state") if created else "check"
else:
  step = verb
log = os.path.join(d, "calls.jsonl")
calls = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
nth = sum(c["step"] == step for c in calls)
with open(log, "a") as f:
  f.write(json.dumps({{"step": step, "argv": argv}}) + "\n")
if scenario.get("hang") == step:
  with open(os.path.join(d, "hanging.tmp"), "w") as f:
    f.write(str(os.getpid()))
  os.rename(os.path.join(d, "hanging.tmp"), os.path.join(d, "hanging"))
  time.sleep(600)
if step in scenario.get("fail", {{}}):
  print(f"ERROR: fake {{step}} failed", file=sys.stderr)
  sys.exit(scenario["fail"][step])
def pick(name, default):
  seq = scenario.get(name, [default])
  return seq[min(nth, len(seq) - 1)]
if step == "check":
  print("ERROR: (gcloud) NOT_FOUND: no such node", file=sys.stderr)
  sys.exit(1)
if step == "create":
  open(os.path.join(d, "created"), "w").close()
elif step == "delete":
  if os.path.exists(os.path.join(d, "created")):
    os.remove(os.path.join(d, "created"))
elif step == "wait":
  print(pick("queued_states", "ACTIVE"))
elif step == "state":
  print(pick("node_states", "READY"))
elif step == "attach":
  worker = next(a for a in argv if a.startswith("--worker=")).split("=")[1]
  start = int(command.split()[-1])
  run = pick("attach", {{"lines": 3, "status": 0}})
  for i in range(start, run["lines"] + 1):
    print(f"worker {{worker}} line {{i}}", flush=True)
  sys.exit(run["status"])
'''


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch):
  """(write_scenario, calls): a fake gcloud first on PATH, and its call log."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake = bin_dir / "gcloud"
  fake.write_text(_FAKE_GCLOUD.format(python=sys.executable))
  fake.chmod(0o755)
  state = tmp_path / "gcloud_state"
  state.mkdir()
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  monkeypatch.setenv("FAKE_GCLOUD_DIR", str(state))

  def write_scenario(**scenario):
    (state / "scenario.json").write_text(json.dumps(scenario))

  def calls():
    path = state / "calls.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []

  write_scenario()
  return write_scenario, calls, state


def _plan(tmp_path, **kwargs):
  defaults = dict(name="hn", zone="us-west4-a", accelerator_type="v5e-8",
                  config="configs/synthetic.py:small", workdir="gs://bucket/run",
                  spot=True, queued=True, poll_seconds=0.01,
                  fetch_to=str(tmp_path / "local"))
  return tc.Plan(**{**defaults, **kwargs})


def _launch(plan, **kwargs):
  out = _Capture()
  status = tpu_pod.Launcher(plan, out=out, reattach_backoff=0.01, **kwargs).run()
  return status, out.text


class _Capture:

  def __init__(self):
    self.text = ""

  def write(self, text):
    self.text += text

  def flush(self):
    pass


def _steps(calls):
  return [c["step"] for c in calls]


def _commands(lines):
  return [line for line in lines if not line.startswith("#")]


def test_success_walks_the_dry_run_and_deletes(tmp_path, fake_gcloud):
  write_scenario, calls, _ = fake_gcloud
  write_scenario(queued_states=["WAITING_FOR_RESOURCES", "PROVISIONING", "ACTIVE"])
  plan = _plan(tmp_path)
  status, out = _launch(plan)
  assert status == 0, out
  assert _steps(calls()) == ["check", "check", "create", "wait", "wait", "wait", "mkdir",
                             "copy", "provision", "preflight", "start", "attach", "delete"]
  # The dry run's commands, in its order (its preemption branch repeats earlier ones).
  ran = [tpu_pod.shlex.join(["gcloud"] + c["argv"]) for c in calls()]
  assert list(dict.fromkeys(ran)) == list(dict.fromkeys(_commands(tc.dry_run(plan))))
  assert "[w0] worker 0 line 3" in out
  assert (tmp_path / "local" / "logs" / "worker-0.log").read_text() == "".join(
      f"worker 0 line {i}\n" for i in (1, 2, 3))


@pytest.mark.parametrize("step", ["check", "create", "wait", "mkdir", "copy", "provision",
                                  "preflight", "start", "attach"])
def test_a_failing_step_still_deletes_what_was_created(tmp_path, fake_gcloud, step):
  write_scenario, calls, state = fake_gcloud
  if step == "wait":
    write_scenario(queued_states=["WAITING_FOR_RESOURCES", "FAILED"])
  elif step == "attach":
    write_scenario(attach=[{"lines": 2, "status": 1}])
  else:
    write_scenario(fail={step: 1})
  status, out = _launch(_plan(tmp_path))
  assert status == 1, out
  steps = _steps(calls())
  if step == "check":  # the name could be someone else's: touch nothing
    assert "create" not in steps and "delete" not in steps
  else:
    assert steps[-1] == "delete" and steps.count("delete") == 1, steps
    assert not (state / "created").exists()


def test_check_refuses_a_name_in_use(tmp_path, fake_gcloud):
  _, calls, state = fake_gcloud
  (state / "created").touch()  # describe now succeeds: the name is taken
  status, out = _launch(_plan(tmp_path, queued=False))
  assert status == 1 and "already exists" in out
  assert _steps(calls()) == ["state"]  # one describe, then nothing


@pytest.mark.parametrize("step,signum", [
    ("check", signal.SIGINT), ("create", signal.SIGTERM), ("wait", signal.SIGINT),
    ("copy", signal.SIGHUP), ("provision", signal.SIGTERM), ("preflight", signal.SIGINT),
    ("start", signal.SIGTERM), ("attach", signal.SIGINT), ("attach", signal.SIGHUP),
])
def test_an_interrupted_step_still_deletes(tmp_path, fake_gcloud, step, signum):
  write_scenario, calls, state = fake_gcloud
  write_scenario(hang=step)
  # As from a terminal, whatever started pytest (under nohup SIGHUP starts ignored).
  started_with = signal.signal(signum, signal.SIG_DFL)

  def interrupt():
    deadline = time.monotonic() + 60
    while not (state / "hanging").exists() and time.monotonic() < deadline:
      time.sleep(0.01)
    os.kill(os.getpid(), signum)

  threading.Thread(target=interrupt, daemon=True).start()
  status, out = _launch(_plan(tmp_path))
  assert status == 128 + signum, out
  hung = int((state / "hanging").read_text())
  with pytest.raises(ProcessLookupError):  # the hanging gcloud was stopped
    for _ in range(50):
      os.kill(hung, 0)
      time.sleep(0.1)
  steps = _steps(calls())
  if step == "check":
    assert "delete" not in steps
  else:
    assert steps[-1] == "delete" and steps.count("delete") == 1, steps
  assert signal.getsignal(signum) is signal.SIG_DFL  # handlers restored
  signal.signal(signum, started_with)


def test_a_signal_ignored_at_start_stays_ignored(tmp_path, fake_gcloud):
  # `nohup python launch/tpu_pod.py ...`: a closed terminal's SIGHUP must not stop the
  # run and delete the slice; the launcher leaves an ignored signal ignored.
  write_scenario, calls, _ = fake_gcloud
  write_scenario()
  started_with = signal.signal(signal.SIGHUP, signal.SIG_IGN)
  seen = []
  real_signal = tpu_pod.signal.signal

  def recording_signal(signum, handler):
    seen.append((signum, handler))
    return real_signal(signum, handler)

  tpu_pod.signal.signal = recording_signal
  try:
    status, out = _launch(_plan(tmp_path))
  finally:
    tpu_pod.signal.signal = real_signal
    real_signal(signal.SIGHUP, started_with)
  assert status == 0, out
  assert not [h for s, h in seen if s == signal.SIGHUP and h is not signal.SIG_IGN], seen
  assert _steps(calls())[-1] == "delete"


def test_keep_deletes_nothing_and_says_how(tmp_path, fake_gcloud):
  write_scenario, calls, _ = fake_gcloud
  write_scenario(fail={"preflight": 1})
  status, out = _launch(_plan(tmp_path, keep=True))
  assert status == 1
  assert "delete" not in _steps(calls())
  assert "gcloud compute tpus queued-resources delete hn --zone=us-west4-a --force" in out


def test_dropped_ssh_attaches_again_from_the_next_line(tmp_path, fake_gcloud):
  write_scenario, calls, _ = fake_gcloud
  write_scenario(attach=[{"lines": 2, "status": 255}, {"lines": 5, "status": 0}])
  status, out = _launch(_plan(tmp_path))
  assert status == 0, out
  attaches = [c["argv"] for c in calls() if c["step"] == "attach"]
  assert [a[-1].split()[-1] for a in attaches] == ["1", "3"]  # from line 1, then line 3
  assert (tmp_path / "local" / "logs" / "worker-0.log").read_text() == "".join(
      f"worker 0 line {i}\n" for i in range(1, 6))
  assert _steps(calls())[-1] == "delete"


@pytest.mark.parametrize("how", ["exit75", "node_gone"])
def test_preempted_spot_run_is_recreated_until_done(tmp_path, fake_gcloud, how):
  write_scenario, calls, _ = fake_gcloud
  if how == "exit75":
    write_scenario(attach=[{"lines": 1, "status": 75}, {"lines": 1, "status": 75},
                           {"lines": 1, "status": 0}])
  else:
    write_scenario(attach=[{"lines": 1, "status": 255}, {"lines": 1, "status": 0}],
                   node_states=["PREEMPTED", "READY"])
  status, out = _launch(_plan(tmp_path))
  assert status == 0, out
  steps = _steps(calls())
  rounds = 3 if how == "exit75" else 2
  assert steps.count("create") == rounds and steps.count("delete") == rounds
  assert steps[-1] == "delete"
  assert "[preempted] deleting the slice and starting again (restart 1 of at most 5)" in out


def test_preemptions_stop_at_max_restarts_and_local_workdirs_do_not_restart(tmp_path,
                                                                           fake_gcloud):
  write_scenario, calls, _ = fake_gcloud
  write_scenario(attach=[{"lines": 1, "status": 75}])
  status, out = _launch(_plan(tmp_path, max_restarts=2))
  assert status == 75 and "--max_restarts=2 reached" in out
  assert _steps(calls()).count("create") == 3
  (tmp_path / "gcloud_state" / "calls.jsonl").unlink()
  status, out = _launch(_plan(tmp_path, workdir="runs/s", queued=False))
  assert status == 75 and "cannot resume elsewhere" in out
  assert _steps(calls()) == ["check", "create", "mkdir", "copy", "provision", "preflight",
                             "start", "attach", "fetch", "delete"]


def test_every_worker_is_started_attached_and_prefixed(tmp_path, fake_gcloud):
  _, calls, _ = fake_gcloud
  status, out = _launch(_plan(tmp_path, accelerator_type="v4-32", queued=False))
  assert status == 0, out
  starts = [c["argv"] for c in calls() if c["step"] == "start"]
  assert [a[a.index("hn") + 2] for a in starts] == [f"--worker={i}" for i in range(4)]
  for i in range(4):
    assert f"[w{i}] worker {i} line 3" in out
    assert (tmp_path / "local" / "logs" / f"worker-{i}.log").read_text().count("\n") == 3


# --- launch/tpu_worker.sh on this machine ------------------------------------

_FAKE_PYTHON = """#!/bin/sh
# The venv's python: real for tpu_worker.sh's own snippets, a fake run otherwise.
if [ "$1" = "-" ]; then exec {python} "$@"; fi
echo "distributed=$HYPERNETS_DISTRIBUTED args=$*"
echo "step 1"
echo "step 2"
sleep 1
echo "stopping"
exit 75
"""


def test_worker_script_runs_detached_and_attach_replays_from_a_line(tmp_path):
  venv = tmp_path / "venv"
  (venv / "bin").mkdir(parents=True)
  python = venv / "bin" / "python"
  python.write_text(_FAKE_PYTHON.format(python=sys.executable))
  python.chmod(0o755)
  env = dict(os.environ, HYPERNETS_VENV=str(venv), HYPERNETS_RUN_DIR=str(tmp_path / "run"),
             PYTHONPATH=REPO_ROOT)
  script = os.path.join(REPO_ROOT, tc.WORKER_SCRIPT)
  workdir = tmp_path / "workdir"
  started = subprocess.run(["bash", script, "start", "0", str(workdir), "launch/main.py",
                            "--x=1"], capture_output=True, text=True, env=env,
                           cwd=REPO_ROOT, timeout=30)
  assert started.returncode == 0 and "worker 0: started" in started.stdout
  attach = subprocess.run(["bash", script, "attach", "1"], capture_output=True, text=True,
                          env=env, timeout=60)
  assert attach.returncode == 75  # the run's own status
  expected = ["distributed=1 args=launch/main.py --x=1", "step 1", "step 2", "stopping"]
  assert attach.stdout.splitlines() == expected
  again = subprocess.run(["bash", script, "attach", "3"], capture_output=True, text=True,
                         env=env, timeout=30)
  assert again.returncode == 75 and again.stdout.splitlines() == expected[2:]
  assert (workdir / "logs" / "worker-0.log").read_text().splitlines() == expected
