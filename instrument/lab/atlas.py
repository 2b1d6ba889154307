"""The atlas: many encoded images charted on one 2D map that a performer can fly across.

Layout ("pca", built in): every latent is summarised by its *style features*, the correlations between its
latent channels over space (C(C-1)/2 numbers, 496 for 32 channels). They ignore where things are in the
picture and how bright each channel is, so a crop, a mirror image or a colour shift of a picture lands next
to the original, while different pictures differ; a 2D PCA of them (torch.linalg.svd) gives the map.
``features="latent"`` charts the flattened latents themselves instead (a plain PCA; mirror images then fall
far apart). "umap" lays the same features out with umap-learn (the optional ``atlas`` extra).

Inverting the map (``from_map``) must give a latent anywhere on it, exact at the anchors, that the map puts
back where the cursor is, and as vivid as the anchors around it:
- a first guess: for pca, a least-squares linear map from map coordinates back to latents (for
  ``features="latent"`` this is the PCA back-projection) plus the anchors' residuals (what the line misses)
  mixed by inverse squared distance to the nearest anchors; for umap, a norm-preserving blend
  (``geometry.blend``) of the nearest anchors by inverse squared distance;
- then the smallest move that brings its map position onto the cursor (Gauss-Newton through ``to_map``);
- then its norm set to the nearest anchors' norms mixed by the same weights: a plain mix of latents is
  shorter than the latents (independent directions partly cancel), which decodes as a flatter, greyer
  picture. Style features ignore the latent's scale, so this keeps the map position.
Map coordinates are (x, y) in [0, 1], x to the right, y downwards, each axis stretched to fill the square.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from instrument.errors import UserError
from instrument.lab.draw import cluster_color, font, label
from instrument.latent.geometry import blend

log = logging.getLogger(__name__)

METHODS = ("pca", "umap")
FEATURES = ("style", "latent")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MARGIN = 0.08  # map coordinates of the outermost anchors keep this far from the edges
NEIGHBOURS = 4  # anchors mixed by from_map / to_map (umap)
ONTO_STEPS = 8  # from_map's Gauss-Newton steps onto the cursor's map position, at most
ONTO_TOLERANCE = 1e-4  # ... until it is this close (map units)


class AtlasError(UserError):
    """An atlas cannot be built or read; the message names the file or the missing package."""


def style_features(latents: torch.Tensor) -> torch.Tensor:
    """Tensor[N,C,h,w] -> Tensor[N,C(C-1)/2]: correlations between latent channels over space, in [-1, 1]."""
    x = latents.float().flatten(2)
    x = x - x.mean(2, keepdim=True)
    x = x / x.norm(dim=2, keepdim=True).clamp_min(1e-8)
    corr = x @ x.transpose(1, 2)
    i, j = torch.triu_indices(latents.shape[1], latents.shape[1], offset=1)
    return corr[:, i, j]


def features_of(latents: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "style":
        return style_features(latents)
    if kind == "latent":
        return latents.float().flatten(1)
    raise ValueError(f"features must be one of {', '.join(FEATURES)}, not {kind!r}")


def kmeans(x: torch.Tensor, k: int, seed: int = 0, iters: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means with k-means++ seeding. x: Tensor[N,D] -> (labels Tensor[N] long, centres Tensor[k,D])."""
    n = len(x)
    k = max(1, min(k, n))
    g = torch.Generator().manual_seed(seed)
    centres = [x[torch.randint(n, (1,), generator=g)].squeeze(0)]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.stack(centres)).min(1).values.pow(2)
        centres.append(x[torch.multinomial(d2 + 1e-12, 1, generator=g)].squeeze(0))
    c = torch.stack(centres)
    labels = torch.zeros(n, dtype=torch.long)
    for step in range(iters):
        new = torch.cdist(x, c).argmin(1)
        if step and torch.equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            # An emptied cluster restarts at the point farthest from its centre.
            c[j] = members.mean(0) if len(members) else x[torch.cdist(x, c).min(1).values.argmax()]
    return labels, c


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Adjusted Rand index of two labelings of the same points (Tensor[N] each): 1 for the same partition
    (whatever the label numbers), about 0 for unrelated ones."""
    table = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.float64)
    table.index_put_((a, b), torch.ones(len(a), dtype=torch.float64), accumulate=True)

    def pairs(x: torch.Tensor) -> torch.Tensor:
        return (x * (x - 1) / 2).sum()

    both, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    total = len(a) * (len(a) - 1) / 2
    expected = rows * cols / total
    top = (rows + cols) / 2 - expected
    return float((both - expected) / top) if top > 0 else 1.0


def stability(x: torch.Tensor, k: int, seed: int = 0, rounds: int = 20, keep: float = 0.8) -> float:
    """How reproducible k-means with k clusters is on points x (Tensor[N, D]): the mean agreement between
    clusterings of ``rounds`` random subsets of ``keep`` of the points (each with its own seeding) and the
    clustering of all of them, on the shared points. Real groups come out the same from any subset; a k
    that splits a group, or merges two, depends on which points were drawn."""
    g = torch.Generator().manual_seed(seed)
    full, _ = kmeans(x, k, seed)
    scores = []
    for r in range(rounds):
        subset = torch.randperm(len(x), generator=g)[:max(k + 1, round(keep * len(x)))]
        labels, _ = kmeans(x[subset], k, seed + 1 + r)
        scores.append(agreement(labels, full[subset]))
    return float(np.mean(scores))


def choose_k(x: torch.Tensor, k_max: int = 8, seed: int = 0) -> int:
    """The number of clusters (2..k_max) whose k-means is the most stable (``stability``; the larger k
    among near ties, within 0.02, so that groups are not merged for a sliver of stability); 1 for fewer
    than 4 points."""
    if len(x) < 4:
        return 1
    scores = {k: stability(x, k, seed) for k in range(2, min(k_max, len(x) - 2) + 1)}
    best = max(scores.values())
    return max(k for k, score in scores.items() if score >= best - 0.02)


class Atlas:
    """Anchor latents placed on a 2D map, invertible anywhere (see the module docstring).

    Attributes: names (list[str]), latents Tensor[N,C,h,w] float32, coords Tensor[N,2] in [0, 1], labels
    Tensor[N] cluster ids, method, features; the fitted projection (feat_mean, feat_basis, lo, hi) and the
    back-projection (back Tensor[3, C·h·w]: rows for 1, x, y).
    """

    def __init__(self, names: list[str], latents: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor,
                 method: str, features: str, tensors: dict[str, torch.Tensor]):
        self.names, self.latents, self.coords, self.labels = list(names), latents.float(), coords, labels
        self.method, self.features = method, features
        self.feat_mean, self.feat_basis = tensors["feat_mean"], tensors["feat_basis"]
        self.lo, self.hi = tensors["lo"], tensors["hi"]
        self._anchor_features = features_of(self.latents, features)
        design = torch.cat([torch.ones(len(coords), 1), coords], 1).double()
        flat = self.latents.flatten(1).double()
        # Least squares from [1, x, y] to the latents: the linear part of from_map.
        self.back = torch.linalg.lstsq(design, flat, driver="gelsd").solution.float()
        self.residuals = (flat - design @ self.back.double()).float()
        self._minimaps: dict[int, Image.Image] = {}

    @classmethod
    def fit(cls, latents: torch.Tensor, names: list[str], method: str = "pca", *, features: str = "style",
            clusters: int = 0, seed: int = 0) -> Atlas:
        """Chart latents (Tensor[N,C,h,w], N >= 3) named ``names``. ``clusters``: k for k-means on the map
        (0: the most stable k up to 8, ``choose_k``)."""
        if method not in METHODS:
            raise AtlasError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        if len(latents) < 3 or len(names) != len(latents):
            raise AtlasError(f"an atlas needs at least 3 latents with one name each; got {len(latents)} "
                             f"latents and {len(names)} names")
        feats = features_of(latents, features)
        mean = feats.mean(0)
        if method == "pca":
            # Two leading principal axes; a sign convention keeps maps from flipping between runs.
            _, _, vt = torch.linalg.svd(feats - mean, full_matrices=False)
            basis = vt[:2] * torch.sign(vt[:2].sum(1, keepdim=True) + 1e-12)
            raw = (feats - mean) @ basis.T
        else:
            raw, basis = _umap(feats, seed), torch.zeros(0)
        lo, hi = raw.min(0).values, raw.max(0).values
        coords = _normalise(raw, lo, hi)
        k = clusters if clusters > 0 else choose_k(coords, seed=seed)
        labels, _ = kmeans(coords, k, seed)
        tensors = {"feat_mean": mean, "feat_basis": basis, "lo": lo, "hi": hi}
        return cls(names, latents, coords, labels, method, features, tensors)

    def to_map(self, latent: torch.Tensor) -> tuple[float, float] | torch.Tensor:
        """Where a latent falls on the map: Tensor[C,h,w] -> (x, y), or Tensor[B,C,h,w] -> Tensor[B,2];
        in [0, 1] (clipped)."""
        batch = latent.unsqueeze(0) if latent.dim() == 3 else latent
        xy = self._position(batch.detach().cpu().float()).clamp(0, 1)
        return (float(xy[0, 0]), float(xy[0, 1])) if latent.dim() == 3 else xy

    def _position(self, batch: torch.Tensor) -> torch.Tensor:
        """Map coordinates of latents Tensor[B,C,h,w] -> Tensor[B,2], unclipped and differentiable."""
        feats = features_of(batch, self.features)
        if self.method == "pca":
            return _normalise((feats - self.feat_mean) @ self.feat_basis.T, self.lo, self.hi)
        # UMAP keeps no formula: place it among its nearest anchors in feature space.
        return _idw(torch.cdist(feats, self._anchor_features), len(self.names)) @ self.coords

    def from_map(self, x: float, y: float) -> torch.Tensor:
        """The latent at map point (x, y) in [0, 1] -> Tensor[C,h,w] float32: exact at anchors, placed where
        ``to_map`` puts it back at (x, y), with the norm of the nearest anchors mixed by the same weights
        (so flying between anchors never shrinks the picture towards grey)."""
        p = torch.tensor([[float(x), float(y)]])
        weights = _idw(torch.cdist(p, self.coords), NEIGHBOURS)[0]
        shape = self.latents.shape[1:]
        if self.method == "umap":
            keep = weights > 0
            latent = blend(self.latents[keep], weights[keep], preserve_norm=True)
        else:
            linear = torch.cat([torch.ones(1), p[0]]) @ self.back
            latent = (linear + weights @ self.residuals).view(shape)
        latent = self._onto(latent, p[0])
        norm = float(weights @ self.latents.flatten(1).norm(dim=1))
        # (Again after the rescale: only the raw latents' positions depend on scale, not style features.)
        return self._onto(latent * (norm / max(float(latent.norm()), 1e-12)), p[0])

    def _onto(self, latent: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Move ``latent`` [C,h,w] the least distance that brings its map position to ``target`` [2]
        (Gauss-Newton on the two coordinates; nothing moves at an anchor, which is already there)."""
        z = latent.clone()
        error = target - self._position(z[None])[0]
        for _ in range(ONTO_STEPS):
            if float(error.norm()) < ONTO_TOLERANCE:
                break
            # (The render thread asks for latents under inference mode, where nothing records gradients.)
            with torch.inference_mode(False), torch.enable_grad():
                zg = z.detach().clone().requires_grad_(True)
                xy = self._position(zg[None])[0]
                jac = torch.stack([torch.autograd.grad(xy[i], zg, retain_graph=i == 0)[0].flatten()
                                   for i in range(2)])
            error = target - xy.detach()
            move = jac.T @ torch.linalg.solve(jac @ jac.T + 1e-9 * torch.eye(2), error)
            for _halving in range(6):  # a step that overshoots is halved
                trial = z + move.view_as(z)
                trial_error = target - self._position(trial[None])[0]
                if float(trial_error.norm()) < float(error.norm()):
                    z, error = trial, trial_error
                    break
                move = move / 2
            else:
                break
        return z

    def nearest(self, x: float, y: float) -> int:
        """Index of the anchor nearest to map point (x, y)."""
        return int(torch.cdist(torch.tensor([[float(x), float(y)]]), self.coords).argmin())

    def save(self, folder: str | Path) -> None:
        """Write ``atlas.json`` (names, coordinates, clusters: for people and other tools) and
        ``atlas.safetensors`` (latents, projection, back-projection: what ``load`` needs)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        info = {
            "method": self.method, "features": self.features, "latent_shape": list(self.latents.shape[1:]),
            "coords": "x to the right, y downwards, in [0, 1]",
            "anchors": [{"name": n, "x": round(float(c[0]), 6), "y": round(float(c[1]), 6), "cluster": int(k)}
                        for n, c, k in zip(self.names, self.coords, self.labels, strict=True)],
        }
        (folder / "atlas.json").write_text(json.dumps(info, indent=1) + "\n")
        tensors = {"latents": self.latents, "coords": self.coords, "labels": self.labels,
                   "feat_mean": self.feat_mean, "feat_basis": self.feat_basis, "lo": self.lo, "hi": self.hi,
                   "back": self.back}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "atlas.safetensors"),
                  metadata={"method": self.method, "features": self.features,
                            "names": json.dumps(self.names)})

    @classmethod
    def load(cls, folder: str | Path, latent_shape: tuple[int, ...] | None = None) -> Atlas:
        """Read an atlas written by ``save``. AtlasError naming the file if it is missing or damaged, or if
        ``latent_shape`` (C, h, w) is given and the atlas was charted at another size."""
        path = Path(folder) / "atlas.safetensors"
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            t = load_file(str(path))
            atlas = cls(json.loads(meta["names"]), t["latents"], t["coords"], t["labels"], meta["method"],
                        meta["features"], t)
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as error:
            raise AtlasError(f"{path}: not a readable atlas ({error})") from error
        charted = tuple(atlas.latents.shape[1:])
        if latent_shape is not None and charted != tuple(latent_shape):
            raise AtlasError(f"{path}: charted with latents of shape {charted}, but this session plays "
                             f"{tuple(latent_shape)}; chart it again with this --size and --model")
        return atlas


def _normalise(raw: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return MARGIN + (1 - 2 * MARGIN) * (raw - lo) / (hi - lo).clamp_min(1e-12)


def _idw(d: torch.Tensor, k: int) -> torch.Tensor:
    """Distances Tensor[B,N] -> weights Tensor[B,N] summing to 1 over the k nearest anchors, all weight on an
    anchor hit exactly. Each weight is 1/d² minus the (k+1)-th nearest's 1/d², so an anchor's weight falls to
    zero just as it leaves the k nearest: moving the cursor never makes the picture jump."""
    if d.shape[1] <= k:
        inv = 1 / d.pow(2).clamp_min(1e-12)
        return inv / inv.sum(1, keepdim=True)
    near = d.topk(k + 1, dim=1, largest=False)
    inv = 1 / near.values.pow(2).clamp_min(1e-12)
    inv = (inv[:, :k] - inv[:, k:]).clamp_min(0)
    w = torch.zeros_like(d)
    w.scatter_(1, near.indices[:, :k], inv / inv.sum(1, keepdim=True).clamp_min(1e-30))
    return w


def _umap(feats: torch.Tensor, seed: int) -> torch.Tensor:
    try:
        import umap
    except ImportError:
        raise AtlasError("--method umap needs umap-learn, the optional 'atlas' extra: "
                         "pip install 'latent-instrument[atlas]' (or use --method pca)") from None
    reducer = umap.UMAP(n_neighbors=min(15, len(feats) - 1), n_components=2, random_state=seed)
    return torch.from_numpy(np.asarray(reducer.fit_transform(feats.numpy()), dtype=np.float32))


def draw_atlas(atlas: Atlas, thumbnails: list[Image.Image], size: int = 1024, title: str = "") -> Image.Image:
    """The atlas picture: thumbnails at their map coordinates (nudged apart where they overlap, with a line
    to their true spot), framed in their cluster's colour, and a legend of the clusters."""
    n = len(atlas.names)
    thumb = int(np.clip(size / (np.sqrt(n) * 1.7), 40, 128))
    pad, top = thumb // 2 + 12, 44
    clusters = sorted(set(atlas.labels.tolist()))
    legend_h = 26 + 22 * len(clusters)
    canvas = Image.new("RGB", (size, top + size + legend_h), (24, 24, 28))
    draw = ImageDraw.Draw(canvas)
    area = size - 2 * pad
    targets = atlas.coords * area + pad
    centres = _spread(targets, thumb + 8, pad, size - pad)
    for (tx, ty), (cx, cy), k in zip(targets.tolist(), centres.tolist(), atlas.labels.tolist(), strict=True):
        draw.line([tx, ty + top, cx, cy + top], fill=cluster_color(k), width=2)
    for i, ((cx, cy), k) in enumerate(zip(centres.tolist(), atlas.labels.tolist(), strict=True)):
        x0, y0 = int(cx - thumb / 2), int(cy - thumb / 2 + top)
        draw.rectangle([x0 - 4, y0 - 4, x0 + thumb + 3, y0 + thumb + 3], fill=cluster_color(k))
        canvas.paste(ImageOps.fit(thumbnails[i].convert("RGB"), (thumb, thumb)), (x0, y0))
    for (tx, ty), k in zip(targets.tolist(), atlas.labels.tolist(), strict=True):
        draw.ellipse([tx - 4, ty + top - 4, tx + 4, ty + top + 4], fill=cluster_color(k), outline=(0, 0, 0))
    how = {"style": "channel correlations", "latent": "latents"}[atlas.features]
    label(draw, (14, 12), title or f"atlas of {n} images · {atlas.method.upper()} of {how} · "
          f"{len(clusters)} clusters", 16)
    y = top + size + 8
    for k in clusters:
        members = [name for name, lab in zip(atlas.names, atlas.labels.tolist(), strict=True) if lab == k]
        text = ", ".join(members[:6]) + (f", … ({len(members)})" if len(members) > 6 else "")
        draw.rectangle([14, y + 2, 30, y + 16], fill=cluster_color(k))
        draw.text((38, y), f"cluster {k + 1}: {text}", font=font(14), fill=(230, 230, 230))
        y += 22
    return canvas


def _spread(points: torch.Tensor, gap: float, low: float, high: float, iters: int = 300) -> torch.Tensor:
    """Push square boxes of side ``gap`` centred on points apart until they barely overlap, pulling each
    gently back towards its own point; points Tensor[N,2] pixels -> Tensor[N,2]."""
    p = points.clone().double()
    g = torch.Generator().manual_seed(0)
    p += (torch.rand(p.shape, generator=g, dtype=torch.float64) - 0.5) * 1e-3 * gap  # separates exact twins
    for _ in range(iters):
        d = p[:, None] - p[None]
        overlap = gap - d.abs().max(2).values
        overlap.fill_diagonal_(0)
        push = overlap.clamp_min(0)
        if push.max() < 0.5:
            break
        direction = d / d.norm(dim=2, keepdim=True).clamp_min(1e-9)
        p += 0.25 * (push[..., None] * direction).sum(1) + 0.02 * (points - p)
        p = p.clamp(low, high)
    return p.float()


def draw_minimap(atlas: Atlas, cursor_xy: tuple[float, float], size: int) -> np.ndarray:
    """The HUD's atlas map: anchors as dots in their cluster colours, the cursor as a crosshair ring.
    cursor_xy in [0, 1] (x right, y down) -> uint8 RGB array [size, size, 3]. The dots are drawn once per
    size and cached on the atlas; a call costs a copy and a few lines (well under a millisecond)."""
    base = atlas._minimaps.get(size)
    if base is None:
        base = Image.new("RGB", (size, size), (16, 16, 20))
        draw = ImageDraw.Draw(base)
        draw.rectangle([0, 0, size - 1, size - 1], outline=(90, 90, 100))
        r = max(2, size // 60)
        for (x, y), k in zip((atlas.coords * (size - 1)).tolist(), atlas.labels.tolist(), strict=True):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=cluster_color(k))
        atlas._minimaps[size] = base
    image = base.copy()
    draw = ImageDraw.Draw(image)
    x, y = (min(max(float(c), 0.0), 1.0) * (size - 1) for c in cursor_xy)
    r = max(4, size // 25)
    draw.line([x - 2 * r, y, x - r, y], fill=(255, 255, 255))
    draw.line([x + r, y, x + 2 * r, y], fill=(255, 255, 255))
    draw.line([x, y - 2 * r, x, y - r], fill=(255, 255, 255))
    draw.line([x, y + r, x, y + 2 * r], fill=(255, 255, 255))
    draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255), width=2)
    return np.asarray(image)


def image_files(folder: Path) -> list[Path]:
    """The pictures in a folder (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def configure_atlas(parser: argparse.ArgumentParser) -> None:
    from instrument.config import AnchorConfig, number

    parser.add_argument("folder", help="a folder of pictures (png, jpg, webp, bmp)")
    parser.add_argument("-o", "--output", required=True,
                        help="folder for atlas.json, atlas.safetensors and (unless --image) atlas.png")
    parser.add_argument("--image", default="", help="write the map picture here instead of OUTPUT/atlas.png")
    parser.add_argument("--method", choices=METHODS, default="pca", help="pca (built in) or umap (needs "
                        "the 'atlas' extra: umap-learn)")
    parser.add_argument("--features", choices=FEATURES, default="style",
                        help="chart channel correlations (style: crops and mirror images stay together) or "
                             "the raw latents")
    parser.add_argument("--clusters", type=number(int, 0, 64), default=0,
                        help="number of colour groups (0: the number whose grouping is the most stable when "
                             "pictures are left out)")
    parser.add_argument("--picture-size", type=number(int, 64, 8192), default=1024,
                        help="width of the map picture in pixels")
    AnchorConfig.add_arguments(parser)


def run_atlas(args: argparse.Namespace) -> int:
    from instrument.config import AnchorConfig
    from instrument.lab.models import load_anchor_latents, load_fast_decoder

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"atlas: {folder} is not a folder")
        return 2
    files = image_files(folder)
    if len(files) < 3:
        print(f"atlas: {folder} holds {len(files)} pictures ({', '.join(IMAGE_SUFFIXES)}); "
              "an atlas needs 3 or more")
        return 2
    config = AnchorConfig.from_args(args)
    ae = load_fast_decoder(config)
    log.info("encoding %d pictures at %dx%d with %s (cached)", len(files), *config.size, ae.label)
    anchors = load_anchor_latents([str(f) for f in files], ae, config, strict=False)
    if anchors is None:
        return 2
    if len(anchors) < len(files):
        print(f"atlas: charting the {len(anchors)} pictures that loaded")
        files = [Path(a.source) for a in anchors]
    try:
        latents = torch.stack([a.latent for a in anchors]).cpu()
        atlas = Atlas.fit(latents, [f.stem for f in files], args.method, features=args.features,
                          clusters=args.clusters, seed=config.seed)
    except AtlasError as error:
        print(f"atlas: {error}")
        return 2
    out = Path(args.output)
    atlas.save(out)
    config.save(out)
    thumbs = []
    for f in files:
        with Image.open(f) as im:
            thumbs.append(ImageOps.fit(im.convert("RGB"), (128, 128)))
    image = Path(args.image) if args.image else out / "atlas.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    draw_atlas(atlas, thumbs, args.picture_size).save(image)
    print(f"charted {len(files)} pictures in {len(set(atlas.labels.tolist()))} clusters; wrote {image}, "
          f"{out / 'atlas.json'}, {out / 'atlas.safetensors'}")
    return 0
