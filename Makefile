# Two commands on a fresh machine:
#   make serve   set up, then run the studio with the embedded defaults and print its URL
#   make test    set up, then run every test
.PHONY: serve test setup

serve:
	@scripts/setup.sh
	@.venv/bin/avlora serve

test:
	@scripts/test.sh

setup:
	@scripts/setup.sh --test
