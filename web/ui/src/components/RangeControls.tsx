import { useEffect, useState } from 'react';

import { autoStep, formatDuration, formatTime, parseDuration, parseTime, rangeChoices } from '../time';

export interface Range {
  rangeMs: number;
  endMs: number | null; // null: now
  stepMs: number | null; // null: automatic
}

// resolveRange gives the start, end and step (seconds) of a range query now.
export function resolveRange(r: Range, now = Date.now()): { start: number; end: number; step: number } {
  const end = r.endMs ?? now;
  const step = r.stepMs ?? autoStep(r.rangeMs);
  // Whole steps, so that refreshing within a step asks the same grid.
  const endAligned = Math.floor(end / step) * step;
  return { start: (endAligned - r.rangeMs) / 1000, end: endAligned / 1000, step: step / 1000 };
}

export function rangeParams(r: Range): Record<string, string | undefined> {
  return {
    range: formatDuration(r.rangeMs),
    end: r.endMs === null ? undefined : String(Math.round(r.endMs / 1000)),
    step: r.stepMs === null ? undefined : formatDuration(r.stepMs),
  };
}

export function rangeFromParams(p: URLSearchParams, defaultRange = 3600 * 1000): Range {
  const end = p.get('end');
  return {
    rangeMs: parseDuration(p.get('range') ?? '') ?? defaultRange,
    endMs: end ? parseTime(end) : null,
    stepMs: parseDuration(p.get('step') ?? ''),
  };
}

// RangeControls edits a range, an end time and a step.
export function RangeControls({ value, onChange, showStep = true }: { value: Range; onChange: (r: Range) => void; showStep?: boolean }) {
  const [rangeText, setRangeText] = useState(formatDuration(value.rangeMs));
  const [endText, setEndText] = useState(value.endMs === null ? '' : formatTime(value.endMs));
  const [stepText, setStepText] = useState(value.stepMs === null ? '' : formatDuration(value.stepMs));
  useEffect(() => setRangeText(formatDuration(value.rangeMs)), [value.rangeMs]);
  useEffect(() => setEndText(value.endMs === null ? '' : formatTime(value.endMs)), [value.endMs]);
  useEffect(() => setStepText(value.stepMs === null ? '' : formatDuration(value.stepMs)), [value.stepMs]);

  const step = (dir: number) => {
    const i = rangeChoices.findIndex((c) => (parseDuration(c) ?? 0) >= value.rangeMs);
    const at = i < 0 ? rangeChoices.length - 1 : i;
    const next = rangeChoices[Math.min(Math.max(at + dir, 0), rangeChoices.length - 1)];
    onChange({ ...value, rangeMs: parseDuration(next)! });
  };
  const shift = (dir: number) => {
    const end = value.endMs ?? Date.now();
    const next = end + (dir * value.rangeMs) / 2;
    onChange({ ...value, endMs: next >= Date.now() ? null : next });
  };
  return (
    <div className="range-controls">
      <div className="group" title="Time range">
        <button type="button" onClick={() => step(-1)} aria-label="Shorter range">
          −
        </button>
        <input
          className="range-input"
          value={rangeText}
          list="range-choices"
          aria-label="Range"
          onChange={(e) => setRangeText(e.target.value)}
          onBlur={() => {
            const ms = parseDuration(rangeText);
            if (ms) {
              onChange({ ...value, rangeMs: ms });
            } else {
              setRangeText(formatDuration(value.rangeMs));
            }
          }}
          onKeyDown={(e) => e.key === 'Enter' && (e.target as HTMLInputElement).blur()}
        />
        <datalist id="range-choices">
          {rangeChoices.map((c) => (
            <option key={c} value={c} />
          ))}
        </datalist>
        <button type="button" onClick={() => step(1)} aria-label="Longer range">
          +
        </button>
      </div>
      <div className="group" title="End of the range (empty: now)">
        <button type="button" onClick={() => shift(-1)} aria-label="Earlier">
          ‹
        </button>
        <input
          className="end-input"
          value={endText}
          placeholder="now"
          aria-label="End"
          onChange={(e) => setEndText(e.target.value)}
          onBlur={() => {
            if (endText.trim() === '' || endText.trim() === 'now') {
              onChange({ ...value, endMs: null });
              return;
            }
            const ms = parseTime(endText);
            if (ms !== null) {
              onChange({ ...value, endMs: ms });
            } else {
              setEndText(value.endMs === null ? '' : formatTime(value.endMs));
            }
          }}
          onKeyDown={(e) => e.key === 'Enter' && (e.target as HTMLInputElement).blur()}
        />
        <button type="button" onClick={() => shift(1)} aria-label="Later">
          ›
        </button>
      </div>
      {showStep && (
        <div className="group" title="Resolution: seconds between points (empty: automatic)">
          <input
            className="step-input"
            value={stepText}
            placeholder={`auto (${formatDuration(autoStep(value.rangeMs))})`}
            aria-label="Step"
            onChange={(e) => setStepText(e.target.value)}
            onBlur={() => {
              const ms = parseDuration(stepText);
              onChange({ ...value, stepMs: stepText.trim() === '' ? null : ms ?? value.stepMs });
              if (stepText.trim() !== '' && !ms) {
                setStepText(value.stepMs === null ? '' : formatDuration(value.stepMs));
              }
            }}
            onKeyDown={(e) => e.key === 'Enter' && (e.target as HTMLInputElement).blur()}
          />
        </div>
      )}
    </div>
  );
}
