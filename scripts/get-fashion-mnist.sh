#!/usr/bin/env bash
# Puts Fashion-MNIST where `resizable` looks first: /usr/share/datasets/fashion-mnist (Debian's
# dataset-fashion-mnist package). Without root or apt, says what to do instead.
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  [ -f "$dir/train-images-idx3-ubyte.gz" ] && exit 0
fi
echo "Fashion-MNIST is not in $dir. Either: sudo apt-get install dataset-fashion-mnist," >&2
echo "or pass --data-dir DIR (the four idx .gz files), or --download when online." >&2
exit 0
