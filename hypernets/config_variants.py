"""Parsing a config file's variant argument: `--config=configs/x.py:quick,kind=embedding`."""


def parse(arg: str | None, *, known: set[str], config_name: str) -> dict[str, str]:
  """'quick,kind=embedding' -> {'quick': '', 'kind': 'embedding'}.

  Raises ValueError naming the config file and the known variants for any other key.
  """
  options = {}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    options[key.strip()] = value.strip()
  unknown = set(options) - set(known)
  if unknown:
    raise ValueError(f"unknown configs/{config_name}.py variant(s) {sorted(unknown)}; "
                     f"known: {', '.join(sorted(known))}")
  return options
