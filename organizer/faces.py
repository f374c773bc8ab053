"""Thin wrapper over face_recognition/dlib: detect faces, embed them, measure quality.

Everything that knows about dlib lives here, so a better detector can be swapped in
by changing this one file. Inputs are upright RGB ``uint8`` arrays; boxes are
``(top, right, bottom, left)`` tuples in that array's pixels, as face_recognition uses.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from organizer.embedding import OnnxEmbedder

# face_recognition_models imports pkg_resources, which prints a deprecation warning.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

Box = tuple[int, int, int, int]

log = logging.getLogger(__name__)

#: dlib's own "same person" threshold on embedding distance
SAME_PERSON_DISTANCE = 0.6

#: what a face records as the engine of its embedding (Face.embedding_engine): dlib's own
#: descriptor, or the same network on onnxruntime (organizer.embedding.ENGINE_ID)
DLIB_ENGINE = "dlib"

LANDMARK_GROUPS = {
    "chin": range(0, 17),
    "left_eyebrow": range(17, 22),
    "right_eyebrow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_tip": range(31, 36),
    "left_eye": range(36, 42),
    "right_eye": range(42, 48),
    "top_lip": range(48, 60),
    "bottom_lip": range(60, 68),
}


@dataclass
class DetectedFace:
    box: Box                          # in the analysed image's pixels
    embedding: np.ndarray             # 128 float64
    landmarks: dict[str, list[list[int]]]  # 68-point groups, analysed image pixels
    sharpness: float                  # variance of the Laplacian of the face region
    frontal: float                    # 1 = looking straight at the camera, 0 = profile
    engine: str = DLIB_ENGINE         # what computed the embedding (Face.embedding_engine)


@lru_cache(maxsize=1)
def _api() -> ModuleType:
    """face_recognition loads dlib's models (~100 MB, ~0.5 s) when first imported.
    (face_recognition is untyped: what is read off the module is Any.)"""
    import face_recognition.api as api

    return api


@lru_cache(maxsize=1)
def _engine() -> OnnxEmbedder | None:
    """dlib's face-embedding network on onnxruntime (organizer.embedding), or None.

    It is used only if it reproduces dlib's own descriptor on a reference chip at start-up;
    otherwise embeddings come from dlib as before, after a one-line notice. Both give the
    same vectors (tests/test_embedding_engine.py: <= 1e-4 per value on real faces)."""
    from organizer import embedding

    try:
        return embedding.load_engine(_dlib_descriptors)
    except embedding.EngineUnavailable as exc:
        log.warning("face embeddings: using dlib's slower descriptor (fast engine unavailable: %s)", exc)
        return None


def embedding_engine() -> str:
    """Which engine makes the embeddings in this process: "onnx" or "dlib"."""
    return "dlib" if _engine() is None else "onnx"


def embedding_engine_id() -> str:
    """What the faces embedded in this process record (Face.embedding_engine)."""
    engine = _engine()
    return DLIB_ENGINE if engine is None else engine.engine_id


def warm_up() -> None:
    """Load the models now (worker initialiser, fork server preload), not on the first photo."""
    _api()
    _engine()


def prepare_engine() -> None:
    """Build the fast engine's file now if it is missing, without loading it (a process
    that starts workers does this once, so they do not all build it at the same time).
    A failure here is left for the workers' own load to report."""
    from organizer import embedding

    with contextlib.suppress(embedding.EngineUnavailable, ImportError, OSError, ValueError):
        embedding.engine_file()


#: HOG's window finds faces down to about 80 px at each upsampling's scale; a coarse pass
#: (one upsampling less) whose smallest face is under 1.5 times its own limit suggests
#: faces just below that limit (people further back in a group), so the full pass runs
SMALL_FACE_PX = 120
#: images from this many pixels on get the coarse pass first: on smaller ones the full
#: pass is cheap and their faces are often under the coarse limit, so both would run
COARSE_FIRST_MIN_PIXELS = 1_000_000


def detect(image: np.ndarray, *, model: str = "hog", upsample: int = 1) -> list[Box]:
    """Face boxes in ``image``, clipped to its bounds; tiny slivers at the border dropped.

    On big images HOG first runs with one upsampling less (a quarter of the pixels to
    scan: 4x less time) and the full pass runs only if that finds no face or a small one
    (:data:`SMALL_FACE_PX`). What this can miss by construction: a face too small for the
    coarse pass (under ~80 px in a 1600 px image, i.e. under 5% of the long side) in a
    photo whose every other face is at least 1.5 times that size. On the shared photo
    sets it finds every face the full pass finds, 1.6x faster on 12 MP photos
    (bench/detect.py)."""
    if model not in ("hog", "cnn"):
        raise ValueError(f"unknown face detector {model!r} (use hog or cnn)")
    if coarse_first(image, model, upsample):
        coarse = detect_once(image, model=model, upsample=upsample - 1)
        if not small_faces_likely(coarse, upsample - 1):
            return coarse
    return detect_once(image, model=model, upsample=upsample)


def coarse_first(image: np.ndarray, model: str, upsample: int) -> bool:
    """Whether :func:`detect` tries a pass with one upsampling less first."""
    return model == "hog" and upsample >= 1 and image.shape[0] * image.shape[1] >= COARSE_FIRST_MIN_PIXELS


def small_faces_likely(boxes: list[Box], upsample: int) -> bool:
    """No face found, or one near the limit of a pass with ``upsample`` upsamplings."""
    limit = SMALL_FACE_PX / 2**upsample
    return not boxes or min(min(b[2] - b[0], b[1] - b[3]) for b in boxes) < limit


def detect_once(image: np.ndarray, *, model: str = "hog", upsample: int = 1) -> list[Box]:
    """One detector pass at ``upsample``: what face_recognition.face_locations finds."""
    boxes = _api().face_locations(image, number_of_times_to_upsample=upsample, model=model)
    return [(int(top), int(right), int(bottom), int(left)) for top, right, bottom, left in boxes
            if bottom - top >= 8 and right - left >= 8]


def embed(image: np.ndarray, boxes: list[Box], *, jitters: int = 1) -> list[DetectedFace]:
    """Embedding, 68 landmarks and quality measures for each box.

    The embedding uses dlib's 5-point alignment (what the recognition model was trained
    with, and face_recognition's default); the raw 68 points are kept (in dlib's index
    order) for resemblance by face region and for frontal-ness.
    """
    if not boxes:
        return []
    api = _api()
    vectors, engine = _embeddings(image, boxes, jitters)
    shapes = api._raw_face_landmarks(image, boxes, model="large")
    out: list[DetectedFace] = []
    for box, vec, shape in zip(boxes, vectors, shapes, strict=True):
        pts = [[p.x, p.y] for p in shape.parts()]
        landmarks = {name: [pts[i] for i in idx] for name, idx in LANDMARK_GROUPS.items()}
        out.append(DetectedFace(box, np.asarray(vec, dtype=np.float64), landmarks, _sharpness(image, box),
                                _frontal(pts), engine))
    return out


def _embeddings(image: np.ndarray, boxes: list[Box], jitters: int) -> tuple[list[np.ndarray], str]:
    """One descriptor per box and the engine that made them: the chips dlib's descriptor
    would cut (5-point shape, 150 px, padding 0.25), all run through the fast engine in
    one call. Jittered descriptors (random crops from dlib's own generator) stay with dlib.

    The chips keep dlib's 5-point alignment rather than reusing the 68 points that embed()
    finds anyway: chips cut from the 68-point shape move the vectors by 0.12 (median; up
    to 0.6, dlib's whole same-person threshold) away from dlib's, for a saving of about
    half the landmark time, 2% of a 12 MP photo's (bench/detect.py)."""
    api = _api()
    engine = _engine() if jitters <= 1 else None
    if engine is None:
        return api.face_encodings(image, boxes, num_jitters=jitters, model="small"), DLIB_ENGINE
    import dlib

    shapes = dlib.full_object_detections()
    shapes.extend(api._raw_face_landmarks(image, boxes, model="small"))
    chips = dlib.get_face_chips(image, shapes, size=150, padding=0.25)
    return list(engine(np.stack(chips))), engine.engine_id


def _dlib_descriptors(chips: np.ndarray) -> np.ndarray:
    """dlib's own descriptors of aligned 150x150 chips (the engine's reference)."""
    encoder = _api().face_encoder
    return np.array([encoder.compute_face_descriptor(np.ascontiguousarray(c), 1) for c in chips])


def _sharpness(image: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the face's grey levels. Only the face region is
    turned grey: the whole 1600 px photo would cost 70 ms, more than the face itself."""
    top, right, bottom, left = box
    region = image[max(0, top):bottom, max(0, left):right]
    if region.shape[0] < 3 or region.shape[1] < 3:
        return 0.0
    region = region.mean(axis=2, dtype=np.float32)
    lap = (region[1:-1, 1:-1] * 4 - region[:-2, 1:-1] - region[2:, 1:-1] - region[1:-1, :-2] - region[1:-1, 2:])
    return float(lap.var())


def _frontal(pts: list[list[int]]) -> float:
    """How frontal the face is, from how centred the nose tip sits between the eyes."""
    left_eye = np.mean(pts[36:42], axis=0)
    right_eye = np.mean(pts[42:48], axis=0)
    nose = np.array(pts[30], dtype=float)
    dl = np.linalg.norm(nose - left_eye)
    dr = np.linalg.norm(nose - right_eye)
    if max(dl, dr) == 0:
        return 0.0
    return float(min(dl, dr) / max(dl, dr))


def quality_score(size_px: int, sharpness: float, frontal: float) -> float:
    """0..1: big, sharp, frontal faces score high. Used to choose covers and evidence."""
    size_term = min(1.0, size_px / 150.0)
    sharp_term = min(1.0, sharpness / 300.0)
    return round(0.4 * size_term + 0.3 * sharp_term + 0.3 * frontal, 4)


def distances(known: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Euclidean distances between each row of ``known`` and ``query``."""
    if len(known) == 0:
        return np.empty(0)
    return np.linalg.norm(np.asarray(known, dtype=np.float32) - np.asarray(query, dtype=np.float32), axis=1)
