"""`python -m tfcvr.data.convert`: see `tfcvr.data.convert.cli`."""

from tfcvr.data.convert import cli

if __name__ == "__main__":
    cli.main()
