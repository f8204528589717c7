"""What each suite runs: sizes, repeats and time budgets.

  smoke        one tiny size of each benchmark (CI; about a minute, mostly compiling); no torch.compile.
  quick        every benchmark at the sizes of the issue (paper configs), ~12 min on
               a 2-core CPU (the recorded run took 699 s).
  full         quick with more repeats, wider scaling ranges and more time for
               torch.compile.
  accelerator  for one GPU/TPU, meant to finish in < 8 min: bf16 against fp32, many
               seeds in one program, the three paper benchmarks at larger batch, the
               conv primary at a larger size; no PyTorch rows (the pinned torch wheel
               is CPU-only) and no CPU-specific optimisation rows.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Comparison:
  """One JAX-vs-PyTorch row: a config file, its variant and overrides."""

  name: str
  title: str
  config: str  # configs/<config>.py
  arg: str | None = None  # get_config(arg)
  overrides: tuple[tuple[str, object], ...] = ()  # ('batch.conditions', 256), ...


@dataclasses.dataclass(frozen=True)
class ConvCase:
  """The conv-primary benchmark's sizes (benchmarks/conv_primary.py)."""

  conditions: int = 64
  images: int = 16  # per conditioning input
  image_shape: tuple[int, int, int] = (8, 8, 3)
  channels: tuple[int, ...] = (8, 16)


@dataclasses.dataclass(frozen=True)
class Suite:
  name: str
  matmul_sizes: tuple[int, ...]
  bandwidth_sizes_mib: tuple[int, ...]
  comparisons: tuple[Comparison, ...]
  torch_compile_budget_s: float  # 0: torch.compile is not run
  seeds_config: tuple[str, str | None]  # (config, arg)
  seeds: tuple[int, ...]
  scaling_config: tuple[str, str | None]
  scaling: dict[str, tuple[int, ...]]  # 'conditions' | 'points' | 'primary_width' -> sizes
  compile_configs: tuple[tuple[str, str | None], ...]
  optimisations: bool = True  # before/after of benchmarks/optimisations.py
  conv_case: ConvCase = ConvCase()
  conv_direct: bool = True  # also time the direct grouped conv (seconds per step)
  data_loop_seeds: int = 8  # S of the 'library step, S seeds' row beside the data loop
  torch_rows: bool = True  # PyTorch rows (when torch is installed)
  # The 'loop' section (benchmarks/loop_dispatch.py): the whole training loop of this
  # config, steps_per_call 1 vs auto, `loop_repeats` alternating runs of each.
  loop_config: tuple[str, str | None] = ("synthetic", None)
  loop_overrides: tuple[tuple[str, object], ...] = (
      ("num_train_steps", 1000), ("log_every_steps", 100), ("eval_every_steps", 500),
      ("checkpoint_every_steps", 500))
  loop_repeats: int = 3  # 0: the section is not run
  warmup: int = 2
  repeats: int = 5
  min_repeat_s: float = 0.2


def _paper_comparisons(synthetic_arg=None, rotation_arg=None, large_batch=(256, 128)):
  conditions, points = large_batch
  return (
      Comparison("rotation_hypernet", "(a) rotation hypernet", "rotation_mnist", rotation_arg),
      Comparison("rotation_embedding", "(b) rotation embedding", "rotation_mnist",
                 ",".join(filter(None, [rotation_arg, "kind=embedding"]))),
      Comparison("synthetic_large_batch", "(c) synthetic hypernet", "synthetic", synthetic_arg,
                 overrides=(("batch.conditions", conditions), ("batch.points", points))),
  )


SHIPPED_CONFIGS = (("synthetic", None), ("rotation_mnist", None), ("rotation_cifar10", None),
                   ("structured", None))

SUITES = {
    "smoke": Suite(
        name="smoke", matmul_sizes=(128,), bandwidth_sizes_mib=(1,),
        comparisons=_paper_comparisons("small", "small", large_batch=(8, 8)),
        torch_compile_budget_s=0.0,
        seeds_config=("synthetic", "small"), seeds=(1, 2),
        scaling_config=("synthetic", "small"),
        scaling={"conditions": (8,), "points": (8,), "primary_width": (16,)},
        compile_configs=(("synthetic", "small"),), optimisations=False,
        conv_case=ConvCase(conditions=4, images=2), data_loop_seeds=2,
        loop_repeats=0,  # two whole runs cost ~1 min of compiling on 2 cores
        warmup=1, repeats=2, min_repeat_s=0.005),
    "quick": Suite(
        name="quick", matmul_sizes=(512, 1024, 2048), bandwidth_sizes_mib=(4, 64, 256),
        comparisons=_paper_comparisons(),
        torch_compile_budget_s=120.0,
        seeds_config=("synthetic", None), seeds=(1, 8, 32, 100),
        scaling_config=("synthetic", None),
        scaling={"conditions": (16, 64, 256, 1024), "points": (8, 32, 128, 512),
                 "primary_width": (16, 64, 256, 1024)},
        compile_configs=SHIPPED_CONFIGS),
    "full": Suite(
        name="full", matmul_sizes=(256, 512, 1024, 2048, 4096),
        bandwidth_sizes_mib=(1, 4, 16, 64, 256),
        comparisons=_paper_comparisons(),
        torch_compile_budget_s=600.0,
        seeds_config=("synthetic", None), seeds=(1, 2, 4, 8, 16, 32, 64, 100, 256),
        scaling_config=("synthetic", None),
        scaling={"conditions": (8, 16, 32, 64, 128, 256, 512, 1024, 2000),
                 "points": (4, 8, 16, 32, 64, 128, 256, 512, 1024),
                 "primary_width": (8, 16, 32, 64, 128, 256, 512, 1024, 2048)},
        compile_configs=SHIPPED_CONFIGS,
        warmup=3, repeats=9, min_repeat_s=0.5),
    "accelerator": Suite(
        name="accelerator", matmul_sizes=(2048, 4096, 8192),
        bandwidth_sizes_mib=(64, 256, 1024),
        comparisons=_paper_comparisons(large_batch=(2048, 128)) + (
            Comparison("rotation_hypernet_1024", "(a) rotation hypernet, B=1024",
                       "rotation_mnist", overrides=(("batch.conditions", 1024),)),
            Comparison("rotation_embedding_1024", "(b) rotation embedding, B=1024",
                       "rotation_mnist", "kind=embedding",
                       overrides=(("batch.conditions", 1024),))),
        torch_compile_budget_s=0.0, torch_rows=False,
        seeds_config=("synthetic", None), seeds=(1, 8, 64, 256),
        scaling_config=("synthetic", None),
        scaling={"conditions": (256, 1024, 4096), "points": (128, 512),
                 "primary_width": (64, 256, 1024)},
        compile_configs=SHIPPED_CONFIGS, optimisations=False,
        conv_case=ConvCase(conditions=256, images=32, image_shape=(32, 32, 3),
                           channels=(32, 64)),
        data_loop_seeds=1, warmup=3, repeats=5, min_repeat_s=0.2),
}
