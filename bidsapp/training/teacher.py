"""The distillation teacher: musicnn's ``MTT_musicnn``, a published MagnaTagATune tagger.

``MTT_musicnn`` (Pons & Serra 2019, PyPI ``musicnn``, ISC licence) was trained on
MagnaTagATune's top-50 tags, the same 50 tags as the study's network, in another order.
This module runs it on 16 kHz audio windows, exactly as ``musicnn.extractor`` does
(librosa mel spectrogram, 512-point FFT, hop 256, 96 bands, float16 then
``log10(10000 x + 1)``), but on arrays and in batches, and returns its sigmoid outputs in
the student's tag order (:data:`bidsapp.audio.weightfile.TAGS`).

It needs the optional extra ``[distill]`` (TensorFlow, ``tf-keras``, librosa) and
``pip install musicnn --no-deps``; nothing here runs in the app.  Import errors name that
fix.  :func:`self_check` compares the teacher with its own documented outputs before a
corpus is labelled with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from bidsapp.audio.weightfile import TAGS
from bidsapp.errors import BadDataError, MissingInputError

SAMPLE_RATE = 16_000
FFT_SIZE = 512
FFT_HOP = 256
N_MELS = 96
INPUT_SECONDS = 3.0
TEACHER_MODEL = "MTT_musicnn"
DISTILL_FIX = ("install the distillation extra in its own environment: pip install "
               "'bidsapp[distill]' && pip install musicnn==0.1.0 --no-deps "
               "(docs/training.md, 'Distillation')")

DOCUMENTED_TOP10 = {
    # musicnn's README (github.com/jordipons/musicnn, commit 516acb2): top_tags(...,
    # model='MTT_musicnn', topN=10) on its example clip audio/joram-moments_of_clarity-...mp3.
    "joram-moments_of_clarity-08-solipsism-59-88.mp3": (
        "techno", "electronic", "synth", "fast", "beat", "drums", "no vocals", "no vocal",
        "dance", "ambient"),
    # The same README: top_tags('./audio/TRWJAZW128F42760DD_test.mp3') (topN=3 by default).
    "TRWJAZW128F42760DD_test.mp3": ("guitar", "piano", "fast"),
}
"""Documented outputs of the teacher, to check it before trusting it."""


def align_tags(teacher_tags: Sequence[str], student_tags: Sequence[str] = TAGS) -> np.ndarray:
    """Return the teacher's column for each of the student's tags, matched by name.

    Parameters
    ----------
    teacher_tags : sequence of str
        The teacher's output names, in its order.
    student_tags : sequence of str, optional
        The student's output names (the network's 50 tags by default).

    Returns
    -------
    numpy.ndarray
        int64 indices: ``teacher_outputs[:, result]`` is in the student's order.

    Raises
    ------
    BadDataError
        If the two lists do not hold the same names exactly once each.
    """
    normalised = [t.strip().lower() for t in teacher_tags]
    wanted = [t.strip().lower() for t in student_tags]
    missing = sorted(set(wanted) - set(normalised))
    extra = sorted(set(normalised) - set(wanted))
    if missing or extra or len(set(normalised)) != len(normalised) or len(wanted) != len(
            normalised):
        raise BadDataError(
            f"The teacher's tags do not match the network's (missing {missing}, "
            f"unexpected {extra}, {len(normalised)} teacher and {len(wanted)} network tags)",
            fix="use a MagnaTagATune top-50 teacher such as musicnn's MTT_musicnn")
    position = {tag: i for i, tag in enumerate(normalised)}
    return np.array([position[tag] for tag in wanted], dtype=np.int64)


def teacher_versions() -> dict[str, str]:
    """Return the versions of the teacher's packages (recorded with its labels)."""
    versions = {}
    for package in ("musicnn", "tensorflow", "tensorflow-cpu", "tf-keras", "librosa", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def input_frames(seconds: float = INPUT_SECONDS) -> int:
    """Return the spectrogram frames of one teacher input (187 for 3 s, as musicnn)."""
    # musicnn: librosa.time_to_frames(3, sr, n_fft, hop) + 1.
    return int(np.floor((seconds * SAMPLE_RATE - FFT_SIZE // 2) / FFT_HOP)) + 1


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Return musicnn's input representation of 16 kHz audio.

    Parameters
    ----------
    audio : numpy.ndarray
        1D float32 samples at 16 kHz.

    Returns
    -------
    numpy.ndarray
        (frames, 96) float32: ``log10(10000 mel + 1)`` of the float16-rounded mel power
        spectrogram, as ``musicnn.extractor.batch_data`` computes it.
    """
    try:
        # librosa is the optional [distill] extra: fail with the fix, not at import.
        import librosa
    except ImportError as exc:
        raise MissingInputError("librosa is not installed", fix=DISTILL_FIX) from exc
    mel = librosa.feature.melspectrogram(y=np.asarray(audio, dtype=np.float32), sr=SAMPLE_RATE,
                                         hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS).T
    mel = mel.astype(np.float16)
    return np.log10(10000 * mel + 1).astype(np.float32)


class MusicnnTeacher:
    """``MTT_musicnn`` loaded once, predicting batches of windows.

    Parameters
    ----------
    model : str, optional
        The musicnn model (``MTT_musicnn``).
    batch_size : int, optional
        Spectrogram patches per TensorFlow call.

    Attributes
    ----------
    tags : list of str
        The teacher's tags, in its order.
    order : numpy.ndarray
        :func:`align_tags` of :attr:`tags`.
    frames : int
        Spectrogram frames per input (187).
    """

    def __init__(self, model: str = TEACHER_MODEL, batch_size: int = 64) -> None:
        # musicnn builds its graph with tf.compat.v1.layers, which Keras 3 removed.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            # TensorFlow and musicnn are the optional [distill] extra.
            import tensorflow as tf
            from musicnn import configuration, models
        except ImportError as exc:
            raise MissingInputError(f"The teacher cannot be loaded ({exc})",
                                    fix=DISTILL_FIX) from exc
        import musicnn  # the same optional extra; only its version is read

        tf.compat.v1.disable_eager_execution()
        self.model, self.batch_size = model, batch_size
        self.tags = list(configuration.MTT_LABELS if "MTT" in model
                         else configuration.MSD_LABELS)
        self.order = align_tags(self.tags)
        self.frames = input_frames()
        self._graph = tf.Graph()
        with self._graph.as_default(), tf.name_scope("model"):
            self._x = tf.compat.v1.placeholder(tf.float32, [None, self.frames, N_MELS])
            self._training = tf.compat.v1.placeholder(tf.bool)
            outputs = models.define_model(self._x, self._training, model, len(self.tags))
            self._y = tf.nn.sigmoid(outputs[0])
            self._session = tf.compat.v1.Session(graph=self._graph)
            self._session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(
                self._session, os.path.join(os.path.dirname(musicnn.__file__), model) + "/")

    def predict_patches(self, patches: np.ndarray) -> np.ndarray:
        """Return the teacher's probabilities, in the teacher's order, for mel patches.

        Parameters
        ----------
        patches : numpy.ndarray
            (n, frames, 96) from :func:`log_mel`.

        Returns
        -------
        numpy.ndarray
            (n, 50) float32.
        """
        out = [self._session.run(self._y, feed_dict={self._x: patches[i:i + self.batch_size],
                                                     self._training: False})
               for i in range(0, len(patches), self.batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(self.tags)),
                                                                           np.float32)

    def window_patch(self, window: np.ndarray) -> np.ndarray:
        """Return the teacher's input for one student window: its central 3 s of frames.

        Parameters
        ----------
        window : numpy.ndarray
            1D 16 kHz samples of at least 3 s (the student's 50,176-sample windows).

        Returns
        -------
        numpy.ndarray
            (frames, 96).
        """
        mel = log_mel(window)
        start = max(0, (mel.shape[0] - self.frames) // 2)
        return mel[start:start + self.frames]

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Return the teacher's probabilities per window, in the student's tag order.

        Parameters
        ----------
        windows : numpy.ndarray
            (n, samples) float32 at 16 kHz, samples >= 3 s.

        Returns
        -------
        numpy.ndarray
            (n, 50) float32, columns in :data:`~bidsapp.audio.weightfile.TAGS` order.
        """
        patches = np.stack([self.window_patch(w) for w in windows]) if len(windows) else \
            np.zeros((0, self.frames, N_MELS), np.float32)
        return self.predict_patches(patches)[:, self.order]

    def taggram(self, audio: np.ndarray) -> np.ndarray:
        """Return musicnn's taggram of a whole recording (non-overlapping 3-s patches).

        This is what ``musicnn.extractor.extractor(..., input_overlap=False)`` computes,
        in the teacher's tag order, used by :func:`self_check`.

        Parameters
        ----------
        audio : numpy.ndarray
            1D 16 kHz samples.

        Returns
        -------
        numpy.ndarray
            (patches, 50).
        """
        mel = log_mel(audio)
        starts = range(0, mel.shape[0] - self.frames + 1, self.frames)
        return self.predict_patches(np.stack([mel[s:s + self.frames] for s in starts]))


def self_check(teacher: MusicnnTeacher, audio_path: str, expected: Sequence[str]) -> dict:
    """Compare the teacher's top tags on a clip with its documented ones.

    As musicnn's ``top_tags``: librosa decodes the file at 16 kHz, the taggram's mean over
    time ranks the tags.

    Parameters
    ----------
    teacher : MusicnnTeacher
        The loaded teacher.
    audio_path : str
        The documented example clip.
    expected : sequence of str
        Its documented top tags, in order.

    Returns
    -------
    dict
        ``file``, ``expected``, ``got`` (the same number of top tags), ``passed`` (the same
        set of tags) and ``same_order``.
    """
    import librosa  # the optional [distill] extra, present once the teacher loaded

    audio, _ = librosa.load(audio_path, sr=SAMPLE_RATE)
    scores = teacher.taggram(audio).mean(axis=0)
    got = [teacher.tags[i] for i in np.argsort(-scores)[:len(expected)]]
    return {"file": os.path.basename(audio_path), "expected": list(expected), "got": got,
            "passed": set(got) == set(expected), "same_order": got == list(expected)}
