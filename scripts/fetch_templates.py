"""Fill ``$TEMPLATEFLOW_HOME`` with the templates the app may use, at container build time.

Usage: ``python scripts/fetch_templates.py SPACE [SPACE ...]``.  Fetches the T1w, brain mask
and tissue probability maps at 1 and 2 mm for each space, so that runs are offline.
"""

import sys


def main(spaces: list[str]) -> int:
    """Fetch the template files of each space; return 0 when every space has a T1w."""
    from templateflow import api

    status = 0
    for space in spaces:
        files = api.get(space, resolution=[1, 2], suffix=["T1w", "mask", "probseg"],
                        atlas=None, extension=".nii.gz")
        files = files if isinstance(files, list) else [files]
        print(f"fetch_templates: {space}: {len(files)} files")
        if not any(str(f).endswith("_T1w.nii.gz") for f in files):
            print(f"fetch_templates: {space}: no T1w was fetched", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
