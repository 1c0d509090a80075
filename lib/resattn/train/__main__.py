"""Runs one config from the command line.

    python -m resattn.train [params/NAME.yaml] [KEY=VALUE ...] --run-dir results/NAME [--force]

KEY=VALUE pairs override the file's keys; values are read as YAML (56, 0.1, null, [65, 120]).
A bad key or value stops the run with a one-line error before any data is read.
"""

import argparse
import sys

import yaml


def parse_config(sources):
    from resattn.train.run_config import read_mapping

    config = {}
    for source in sources:
        if "=" in source:
            key, _, value = source.partition("=")
            config[key.strip()] = yaml.safe_load(value)
        else:
            config.update(read_mapping(source))
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m resattn.train", description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", help="params files and KEY=VALUE overrides, in order")
    parser.add_argument("--run-dir", required=True, help="where the run's files go")
    parser.add_argument("--force", action="store_true", help="retrain a finished run from scratch")
    args = parser.parse_args(argv)
    from resattn.data.datasets import DATASETS, DataError
    from resattn.train.devices import DeviceError
    from resattn.train.loop import train
    from resattn.train.run_config import RunConfig
    from resattn.train.run_folder import SUCCEEDED, RunFolderBusy

    try:
        config = parse_config(args.sources)
        if "dataset" not in config:  # the library's default is synthetic images, the notebook's CIFAR-10
            raise ValueError(
                f"no dataset given; add dataset=... (one of {', '.join(DATASETS)}) to the "
                "command line or the params file"
            )
        RunConfig.from_mapping(config)
    except (ValueError, OSError, yaml.YAMLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        metrics = train(config, args.run_dir, force=args.force, log=lambda line: print(line, flush=True))
    except (DataError, DeviceError, RunFolderBusy) as error:  # bad input, like a bad config: its message says it all
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if metrics and metrics.get("status") in SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
