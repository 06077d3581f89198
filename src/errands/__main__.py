"""`python -m errands`: the same command line as the `errands` script."""

from errands.cli.main import main

if __name__ == "__main__":
    # A process-pool child re-imports __main__ under another name; only a real run starts.
    main(prog_name="errands")
