"""Time DataLink, SODA cut-outs, whole-image downloads and PNG previews against a running server.

Run ``diavo serve DIR`` first, then ``python bench/bench_images_http.py [BASE_URL] [--repeat N]``
(default http://127.0.0.1:8000). Images are picked from ivoa.ObsCore through the server's TAP.
Targets (issue 5): DataLink for one ID p50 <= 10 ms; a 200x200 SODA cut-out <= 1/10 of the time
and of the bytes of fetching the whole image.

"cold" means the image is not in the server's render cache (each cold case uses an image no
earlier step touched; images are drawn at random, so reruns meet new ones), "warm" that it is.
"""
from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from urllib.parse import quote

import requests
from astropy.io.votable import parse

#: A circle of this radius gives a 200x200-pixel cut-out at 0.2 arcsec/pixel.
CUTOUT_RADIUS_DEG = 99.5 * 0.2 / 3600


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def fetch(session: requests.Session, url: str, **kw) -> int:
    """GET and read the body in 1 MiB pieces (not joined: the client's copy is not the server's time)."""
    with session.get(url, stream=True, timeout=300, **kw) as r:
        r.raise_for_status()
        return sum(len(chunk) for chunk in r.iter_content(1 << 20))


def pct(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def images(session: requests.Session, base: str, n: int) -> list[tuple[str, float, float]]:
    """``n`` images drawn at random, so that a second run on the same server meets cold ones."""
    query = "SELECT TOP 5000 obs_publisher_did, s_ra, s_dec FROM ivoa.ObsCore"
    r = session.post(base + "/tap/sync", data={"LANG": "ADQL", "QUERY": query}, timeout=60)
    r.raise_for_status()
    t = parse(io.BytesIO(r.content)).get_first_table().to_table()
    rows = [(str(row["obs_publisher_did"]), float(row["s_ra"]), float(row["s_dec"])) for row in t]
    return random.Random().sample(rows, min(n, len(rows)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", nargs="?", default="http://127.0.0.1:8000")
    ap.add_argument("--repeat", type=int, default=200, help="DataLink requests timed (default 200)")
    args = ap.parse_args(argv)
    base = args.base.rstrip("/")
    s = requests.Session()
    imgs = images(s, base, 40)
    if len(imgs) < 12:
        raise SystemExit("the archive needs at least 12 images")
    links = lambda ident: s.get(f"{base}/datalink/links?ID={quote(ident, safe='')}", timeout=60)  # noqa: E731

    # -- DataLink -----------------------------------------------------------------------------
    cold = [timed(lambda ident=ident: links(ident))[0] for ident, _, _ in imgs[12:]]
    warm_ids = [ident for ident, _, _ in imgs[12:22]]
    warm = [timed(lambda i=i: links(warm_ids[i % len(warm_ids)]))[0] for i in range(args.repeat)]
    print(f"DataLink, one ID        p50 {statistics.median(warm) * 1e3:7.2f} ms  p90 {pct(warm, 0.9) * 1e3:7.2f} ms"
          f"  (first request for an ID: p50 {statistics.median(cold) * 1e3:.2f} ms)   target p50 <= 10 ms")
    many = [ident for ident, _, _ in imgs]
    t, r = timed(lambda: s.post(f"{base}/datalink/links", data={"ID": many}, timeout=60))
    print(f"DataLink, {len(many)} IDs (POST) {t * 1e3:7.2f} ms, {len(r.content)} bytes")

    # -- whole image: cold render + transfer, then from the cache ------------------------------
    ident0 = imgs[0][0]
    this = lambda ident: next(  # noqa: E731
        row for row in parse(io.BytesIO(links(ident).content)).get_first_table().to_table()
        if row["semantics"] == "#this")
    row = this(ident0)
    t_full_cold, full_bytes = timed(lambda: fetch(s, str(row["access_url"])))
    assert full_bytes == int(row["content_length"])
    t_full_warm, _ = timed(lambda: fetch(s, str(row["access_url"])))
    t_range, r = timed(lambda: s.get(str(row["access_url"]), headers={"Range": "bytes=0-2879"}, timeout=60))
    print(f"whole image FITS        cold {t_full_cold:7.3f} s   warm {t_full_warm:7.3f} s   {full_bytes / 1e6:.1f} MB"
          f"   (Range 2880 bytes, warm: {t_range * 1e3:.1f} ms)")

    # -- SODA 200x200 cut-outs on images not in the cache ----------------------------------------
    def cutouts(group, offset: float = 0.0) -> tuple[float, float]:
        times, sizes = [], []
        for ident, ra, dec in group:
            params = {"ID": ident, "CIRCLE": f"{ra + offset} {dec} {CUTOUT_RADIUS_DEG}"}
            t, n = timed(lambda params=params: fetch(s, f"{base}/soda/sync", params=params))
            times.append(t)
            sizes.append(n)
        return statistics.median(times), statistics.median(sizes)

    t_cut, b_cut = cutouts(imgs[1:9])                # first touch of each image
    t_again, _ = cutouts(imgs[1:9], offset=0.01)     # same images, another position
    t_cached, _ = cutouts(imgs[:1] * 5)              # the image whose whole FITS is cached
    print(f"SODA 200x200 cut-out    p50 {t_cut * 1e3:7.2f} ms on a new image, {t_again * 1e3:.2f} ms on an "
          f"image cut before, {t_cached * 1e3:.2f} ms sliced from a cached image;  {b_cut / 1e3:.1f} kB")
    print(f"   ratios to the whole image: time {t_cut / t_full_cold:.4f} (new vs cold), {t_again / t_full_warm:.3f} "
          f"(cut before vs cached), bytes {b_cut / full_bytes:.5f}   target <= 0.1 of both")

    # -- PNG previews ----------------------------------------------------------------------------
    png = f"{base}/images/{{}}.png"
    path0 = str(row["access_url"]).rsplit("/images/", 1)[1].removesuffix(".fits")
    t_png_cached_img, _ = timed(lambda: s.get(png.format(path0), params={"mask": "1", "sources": "1"}, timeout=120))
    t_png_again, _ = timed(lambda: s.get(png.format(path0), params={"mask": "1", "sources": "1"}, timeout=120))
    path9 = str(this(imgs[9][0])["access_url"]).rsplit("/images/", 1)[1].removesuffix(".fits")
    t_png_cold, r = timed(lambda: s.get(png.format(path9), timeout=120))
    t_thumb, _ = timed(lambda: s.get(png.format(path9), params={"size": "256"}, timeout=120))
    print(f"PNG preview 1024 px     cold image {t_png_cold:6.3f} s   image cached {t_png_cached_img:6.3f} s"
          f"   PNG cached {t_png_again * 1e3:.1f} ms   256-px thumbnail (image cached) {t_thumb * 1e3:.1f} ms"
          f"   {len(r.content) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
