# Conveniences over the scripts (the README's two commands are the scripts).
.PHONY: run test build bench clean
run:
	scripts/run.sh
test:
	scripts/test.sh
build:
	scripts/build.sh build
bench:
	bench/run.sh
clean:
	rm -rf build build-asan
