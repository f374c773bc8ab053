"""Thin wrapper over face_recognition/dlib: detect faces, embed them, measure quality.

Everything that knows about dlib lives here, so a better detector can be swapped in
by changing this one file. Inputs are upright RGB ``uint8`` arrays; boxes are
``(top, right, bottom, left)`` tuples in that array's pixels, as face_recognition uses.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# face_recognition_models imports pkg_resources, which prints a deprecation warning.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

Box = tuple[int, int, int, int]

log = logging.getLogger(__name__)

#: dlib's own "same person" threshold on embedding distance
SAME_PERSON_DISTANCE = 0.6

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


@lru_cache(maxsize=1)
def _api():  # type: ignore[no-untyped-def]
    """face_recognition loads dlib's models (~100 MB, ~0.5 s) when first imported."""
    import face_recognition.api as api

    return api


@lru_cache(maxsize=1)
def _engine():  # type: ignore[no-untyped-def]
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


def warm_up() -> None:
    """Load the models now (worker initialiser), not on the first photo."""
    _api()
    _engine()


def detect(image: np.ndarray, *, model: str = "hog", upsample: int = 1) -> list[Box]:
    """Face boxes in ``image``, clipped to its bounds; tiny slivers at the border dropped."""
    if model not in ("hog", "cnn"):
        raise ValueError(f"unknown face detector {model!r} (use hog or cnn)")
    boxes = _api().face_locations(image, number_of_times_to_upsample=upsample, model=model)
    return [tuple(map(int, b)) for b in boxes if b[2] - b[0] >= 8 and b[1] - b[3] >= 8]  # type: ignore[misc]


def embed(image: np.ndarray, boxes: list[Box], *, jitters: int = 1) -> list[DetectedFace]:
    """Embedding, 68 landmarks and quality measures for each box.

    The embedding uses dlib's 5-point alignment (what the recognition model was trained
    with, and face_recognition's default); the raw 68 points are kept (in dlib's index
    order) for resemblance by face region and for frontal-ness.
    """
    if not boxes:
        return []
    api = _api()
    vectors = _embeddings(image, boxes, jitters)
    shapes = api._raw_face_landmarks(image, boxes, model="large")
    out: list[DetectedFace] = []
    for box, vec, shape in zip(boxes, vectors, shapes):
        pts = [[p.x, p.y] for p in shape.parts()]
        landmarks = {name: [pts[i] for i in idx] for name, idx in LANDMARK_GROUPS.items()}
        out.append(DetectedFace(box, np.asarray(vec, dtype=np.float64), landmarks, _sharpness(image, box), _frontal(pts)))
    return out


def _embeddings(image: np.ndarray, boxes: list[Box], jitters: int) -> list[np.ndarray]:
    """One descriptor per box: the chips dlib's descriptor would cut (5-point shape,
    150 px, padding 0.25), all run through the fast engine in one call. Jittered
    descriptors (random crops from dlib's own generator) stay with dlib."""
    api = _api()
    engine = _engine() if jitters <= 1 else None
    if engine is None:
        return api.face_encodings(image, boxes, num_jitters=jitters, model="small")
    import dlib

    shapes = dlib.full_object_detections()
    shapes.extend(api._raw_face_landmarks(image, boxes, model="small"))
    chips = dlib.get_face_chips(image, shapes, size=150, padding=0.25)
    return list(engine(np.stack(chips)))


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
