"""`ambient-imaging` command line."""
import argparse


def main(argv=None):
    p = argparse.ArgumentParser("ambient-imaging")
    p.parse_args(argv)
