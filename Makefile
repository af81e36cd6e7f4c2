# The two commands of this project: 'make demo' and 'make check'.
# Everything else is a step of these.

.PHONY: demo check build guest patches posting stop bench

demo: build guest
	./scripts/demo.sh

check: build guest
	./tests/run-all.sh

build:
	./scripts/build.sh

guest:
	./scripts/install-deps.sh
	./tests/guest/build.sh >/dev/null

# Regenerate libvirt/patches/ from the commits in build/libvirt.
patches:
	./scripts/export-patches.sh

# The posting form of the series, in build/posting (README.md); check it
# with ./scripts/format-series.sh --check.
posting:
	./scripts/format-series.sh

stop:
	./run --stop

# Benchmarks (not tests): bench/README.md.
bench: build guest
	./bench/bench.py
