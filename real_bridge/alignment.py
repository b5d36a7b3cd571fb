"""Putting decoded streams on one clock and resampling them onto the control-rate grid.

The steps, each reported as a `Problem` when it finds something:

1. Effective time. A message's time is its ``header.stamp``; a zero stamp falls back to the
   receive (log) time, shifted onto the topic's own clock (see `_fill_zero_stamps`). Messages
   without a header (commands, flags, events) use the log time shifted by the median
   stamp-minus-log offset of the stamped topics in their segment, so a robot that stamps with
   its own clock (simulation time, say) still lines up.
2. Clock jumps. In receive order, a time more than ``clock_jump_s`` below its predecessor is a
   clock jump (a restarted simulation, a reset robot clock). The recording is cut into
   segments there and each segment is read on its own; smaller steps back are reordered.
3. Ordering. Within a segment every topic is sorted by time, never by file order.
4. Gaps. A streaming topic that is silent for longer than ``max_gap_s`` inside an episode is
   a gap; the caller splits or rejects the episode.
5. Resampling. At every grid time the latest message at or before it is used if it is at most
   the topic's tolerance old (or at any age for topics that hold their last value).

All times are int64 nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ast_robot.real_bridge.decode import Stream
from ast_robot.real_bridge.problems import Problem

CUT_CLUSTER_NS = 2_000_000_000
"""Clock jumps seen on several topics within this receive-time span (2 s) are one jump."""


@dataclass
class TimedStream:
    """A stream on the segment's clock, sorted by time.

    Attributes:
        stream: The decoded stream (its `values` and `texts` rows are reordered to match `t_ns`).
        t_ns: Effective time of each message in ns, int64 (N,), non-decreasing.
        values: Rows of `stream.values` in time order, float64 (N, width).
        texts: Event strings in time order, or None.
    """

    stream: Stream
    t_ns: np.ndarray
    values: np.ndarray
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.t_ns)

    def between(self, start_ns: int, stop_ns: int) -> np.ndarray:
        """Times of messages in [start_ns, stop_ns]."""
        lo = np.searchsorted(self.t_ns, start_ns, side="left")
        hi = np.searchsorted(self.t_ns, stop_ns, side="right")
        return self.t_ns[lo:hi]


@dataclass
class Segment:
    """A stretch of a recording with one consistent clock.

    Attributes:
        index: 0 for the first segment, counting up at each clock jump.
        streams: Role -> `TimedStream`; every role read from the bag is present (maybe empty).
        start_ns, end_ns: First and last effective message time in the segment.
        offset_ns: Added to the log time of messages without a header.
    """

    index: int
    streams: dict[str, TimedStream]
    start_ns: int
    end_ns: int
    offset_ns: int


def build_segments(
    streams: dict[str, Stream], *, bag: str, clock_jump_ns: int, problems: list[Problem]
) -> list[Segment]:
    """Run steps 1 to 3 of the module docstring on one recording's streams."""
    ordered = {role: _reordered(stream, np.argsort(stream.log_ns, kind="stable")) for role, stream in streams.items()}
    # Receive order from here on: the recorder's clock is the one order all topics share.
    stamped = [stream for stream in ordered.values() if stream.has_header and (stream.stamp_ns != 0).any()]
    fallback_offset = (
        int(np.median(np.concatenate([s.stamp_ns[s.stamp_ns != 0] - s.log_ns[s.stamp_ns != 0] for s in stamped])))
        if stamped else 0
    )
    effective: dict[str, np.ndarray] = {}
    for role, stream in ordered.items():
        if not stream.has_header:
            continue
        zero = stream.stamp_ns == 0
        effective[role] = _fill_zero_stamps(stream, zero, fallback_offset)
        # A zero stamp at log time 0 agrees with the log; only report stamps that disagree.
        unstamped = zero & (stream.log_ns != 0)
        if unstamped.any():
            problems.append(
                Problem(
                    bag, "zero_stamps",
                    f"{int(unstamped.sum())} of {len(stream)} header stamps are zero; using their log time, shifted onto the topic's clock",
                    topic=stream.topic, time_ns=int(stream.log_ns[np.flatnonzero(unstamped)[0]]),
                )
            )

    jumps = {role: _find_jumps(ordered[role], t, clock_jump_ns, bag, problems) for role, t in effective.items()}
    cut_times = _cluster_cuts([int(ordered[role].log_ns[i]) for role, idx in jumps.items() for i in idx])

    segment_ids: dict[str, np.ndarray] = {}
    for role, stream in ordered.items():
        ids = np.zeros(len(stream), dtype=np.int64)
        own = jumps.get(role, [])
        for cluster, cut in enumerate(cut_times):
            # A topic that jumped itself is cut at its own jump, others at the cluster's first cut.
            mine = [i for i in own if abs(int(stream.log_ns[i]) - cut) <= CUT_CLUSTER_NS]
            if mine:
                ids[mine[0]:] = cluster + 1
            else:
                ids[stream.log_ns >= cut] = cluster + 1
        segment_ids[role] = ids

    segments = []
    for index in range(len(cut_times) + 1):
        segments.append(_make_segment(index, ordered, effective, segment_ids, bag, problems))
    return [segment for segment in segments if segment is not None]


def _fill_zero_stamps(stream: Stream, zero: np.ndarray, fallback_offset: int) -> np.ndarray:
    """Replace zero stamps by the log time, moved onto the topic's stamp clock.

    The shift is the stamp-minus-log offset of the next stamped message of the same topic (the
    last one for trailing zeros). A clock that restarts (a simulation reset) starts at exactly
    0, so the zero belongs with the messages after it. A topic without any stamp uses the
    median offset of the other topics (about 0 when everything is stamped with wall time).
    """
    if not zero.any():
        return stream.stamp_ns
    stamped = np.flatnonzero(~zero)
    if not len(stamped):
        return stream.log_ns + fallback_offset
    offsets = stream.stamp_ns[stamped] - stream.log_ns[stamped]
    position = np.searchsorted(stamped, np.arange(len(zero)), side="left")
    offset = offsets[np.minimum(position, len(stamped) - 1)]
    return np.where(zero, stream.log_ns + offset, stream.stamp_ns)


def _reordered(stream: Stream, order: np.ndarray) -> Stream:
    if np.all(order[1:] > order[:-1]):
        return stream
    texts = [stream.texts[i] for i in order] if stream.texts is not None else None
    return Stream(
        role=stream.role, topic=stream.topic, msgtype=stream.msgtype, log_ns=stream.log_ns[order],
        stamp_ns=stream.stamp_ns[order], values=stream.values[order], texts=texts,
        declared_count=stream.declared_count, has_header=stream.has_header,
    )


def _find_jumps(stream: Stream, t_ns: np.ndarray, clock_jump_ns: int, bag: str, problems: list[Problem]) -> list[int]:
    """Return indices (in receive order) of messages whose time jumps back by more than the limit."""
    if len(t_ns) < 2:
        return []
    steps = np.diff(t_ns)
    jumps = np.flatnonzero(steps < -clock_jump_ns) + 1
    for i in jumps:
        problems.append(
            Problem(
                bag, "clock_jump",
                f"time jumps back from {t_ns[i - 1] / 1e9:.3f} s to {t_ns[i] / 1e9:.3f} s; the recording is "
                "split there and each part is read on its own",
                topic=stream.topic, time_ns=int(t_ns[i - 1]),
            )
        )
    small = (steps < 0) & (steps >= -clock_jump_ns)
    if small.any():
        first = int(np.flatnonzero(small)[0]) + 1
        problems.append(
            Problem(
                bag, "unsorted",
                f"{int(small.sum())} message(s) carry a time earlier than the message before them (largest step "
                f"back {-steps[small].min() / 1e6:.1f} ms); messages are ordered by time",
                topic=stream.topic, time_ns=int(t_ns[first]),
            )
        )
    return [int(i) for i in jumps]


def _cluster_cuts(cuts: list[int]) -> list[int]:
    clusters: list[int] = []
    for cut in sorted(cuts):
        if not clusters or cut - clusters[-1] > CUT_CLUSTER_NS:
            clusters.append(cut)
    return clusters


def _make_segment(
    index: int,
    streams: dict[str, Stream],
    effective: dict[str, np.ndarray],
    segment_ids: dict[str, np.ndarray],
    bag: str,
    problems: list[Problem],
) -> Segment | None:
    masks = {role: segment_ids[role] == index for role in streams}

    offsets = []
    for role, t in effective.items():
        mask = masks[role] & (streams[role].stamp_ns != 0)
        if mask.any():
            offsets.append(t[mask] - streams[role].log_ns[mask])
    offset_ns = int(np.median(np.concatenate(offsets))) if offsets else 0

    timed: dict[str, TimedStream] = {}
    for role, stream in streams.items():
        mask = masks[role]
        t = effective[role][mask] if role in effective else stream.log_ns[mask] + offset_ns
        texts = [text for text, keep in zip(stream.texts, mask) if keep] if stream.texts is not None else None
        values = stream.values[mask]
        order = np.argsort(t, kind="stable")
        if texts is not None:
            texts = [texts[i] for i in order]
        timed[role] = TimedStream(stream=stream, t_ns=t[order], values=values[order], texts=texts)

    times = [ts.t_ns for ts in timed.values() if len(ts)]
    if not times:
        return None
    return Segment(
        index=index,
        streams=timed,
        start_ns=int(min(t[0] for t in times)),
        end_ns=int(max(t[-1] for t in times)),
        offset_ns=offset_ns,
    )


def find_gaps(
    segment: Segment, roles: list[str], start_ns: int, end_ns: int, max_gap_ns: int
) -> list[tuple[str, int, int]]:
    """Return (topic, gap start ns, gap end ns) for every silence longer than `max_gap_ns`
    between messages of the given streaming roles inside [start_ns, end_ns]."""
    gaps = []
    for role in roles:
        timed = segment.streams.get(role)
        if timed is None or not len(timed):
            continue
        t = timed.between(start_ns, end_ns)
        if len(t) < 2:
            continue
        steps = np.diff(t)
        for i in np.flatnonzero(steps > max_gap_ns):
            gaps.append((timed.stream.topic, int(t[i]), int(t[i + 1])))
    return sorted(gaps, key=lambda gap: gap[1])


def resample(timed: TimedStream, grid_ns: np.ndarray, tolerance_ns: int | None) -> np.ndarray:
    """Sample a stream at grid times by the latest message at or before each time.

    Args:
        timed: The stream, sorted by time.
        grid_ns: Grid times in ns, int64 (T,).
        tolerance_ns: Maximum message age in ns, or None for any age.

    Returns:
        float64 (T, width); rows with no message in tolerance are NaN.
    """
    width = timed.values.shape[1]
    out = np.full((len(grid_ns), width), np.nan)
    if not len(timed):
        return out
    index = np.searchsorted(timed.t_ns, grid_ns, side="right") - 1
    valid = index >= 0
    if tolerance_ns is not None:
        valid &= (grid_ns - timed.t_ns[np.maximum(index, 0)]) <= tolerance_ns
    out[valid] = timed.values[index[valid]]
    return out
