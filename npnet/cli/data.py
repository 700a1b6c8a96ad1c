"""``npnet data``: find (or download) Fashion-MNIST and say where it is."""
import os
import sys
import traceback

from ._common import EXIT_FAILED, EXIT_OK, UsageError, _data_dir_line, _directory, _download_line, _one_line


def add_parser(sub):
    p = sub.add_parser("data", help="find (or download) Fashion-MNIST and say where it is",
                       description="With --data-dir, use that folder only (downloading the missing files into it "
                                   "unless --no-download). Otherwise find Fashion-MNIST ($NPNET_DATA, the per-user "
                                   "cache, /usr/share/datasets/fashion-mnist), else download it into the cache. "
                                   "Exit 0 when the data is there, 1 when it is not found and could not be "
                                   "downloaded, 2 for a --data-dir that cannot be used or a corrupt file.")
    p.add_argument("--data-dir", type=_directory, metavar="DIR",
                   help="the one folder to use, and to download into")
    p.add_argument("--no-download", action="store_true", help="only look; never download")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print one line whatever happens: where the data is, or why it is not there")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_data)


def cmd_data(args):
    from .. import data
    from ..errors import DataError, DownloadError

    download = not args.no_download
    files = None
    try:
        files = data.find_fashion_mnist(args.data_dir)
        if files is None and download and not args.quiet:
            dest = args.data_dir or data.fashion_mnist_cache_dir()
            print(f"Fashion-MNIST not found locally; downloading it into {dest} ...", flush=True)
        X_train, _, X_test, _ = data.load_fashion_mnist(args.data_dir, download=download)
    except data.DataDirError as e:
        raise UsageError(_data_dir_line(e, "drop --no-download to download it there")) from e
    except DataError as e:   # includes DownloadError; the message lists every way to provide the data
        if files is not None:   # found but corrupt: another copy elsewhere would not be used
            raise UsageError(f"cannot load Fashion-MNIST: {_one_line(str(e))}") from e
        if args.debug:
            traceback.print_exc()
        if not args.quiet:
            print(f"npnet data: {e}", file=sys.stderr)
        else:
            why = f"; {_download_line(e)}" if isinstance(e, DownloadError) else ""
            print(f"npnet data: Fashion-MNIST not found locally{why} (run `npnet data` to see every place "
                  "searched and every way to provide it)", file=sys.stderr)
        return EXIT_FAILED
    files = data.find_fashion_mnist(args.data_dir)
    where = os.path.dirname(next(iter(files.values()))) if files else "?"
    print(f"Fashion-MNIST found in {where}: {X_train.shape[0]} training and {X_test.shape[0]} test images")
    return EXIT_OK
