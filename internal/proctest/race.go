package proctest

import (
	"fmt"
	"strings"
	"testing"
)

// raceStart and raceEnd delimit a report of Go's race detector.
const (
	raceStart = "WARNING: DATA RACE"
	raceEnd   = "=================="
)

// maxRaceReports bounds the reports a failed test prints in full.
const maxRaceReports = 3

// KillCheckRace kills the process and fails t when its log (a binary built
// with -race) holds a data race report. It prints the first reports
// whole, with runs of one repeated stack frame (the race detector's
// reconstruction of an old access's stack can repeat a frame a hundred
// times) collapsed, because the log's tail that a failed test prints may
// not reach back to them.
func (p *Process) KillCheckRace(t testing.TB) {
	t.Helper()
	p.Kill()
	reports := RaceReports(p.Log())
	if len(reports) == 0 {
		return
	}
	shown := reports[:min(len(reports), maxRaceReports)]
	t.Errorf("%s (log %s) reported %d data race(s); the first:\n%s", p.Name, p.LogPath, len(reports), strings.Join(shown, "\n"))
}

// RaceReports returns the race detector's reports in log, each with runs
// of a repeated two-line stack frame collapsed into one frame and a count.
func RaceReports(log string) []string {
	var reports []string
	for {
		i := strings.Index(log, raceStart)
		if i < 0 {
			return reports
		}
		log = log[i:]
		end := strings.Index(log, raceEnd)
		if end < 0 {
			end = len(log)
		}
		reports = append(reports, collapseFrames(log[:end]))
		log = log[end:]
	}
}

// collapseFrames replaces consecutive repeats of a stack frame (a function
// line followed by its file line) with the frame once and a count.
func collapseFrames(report string) string {
	lines := strings.Split(report, "\n")
	var out []string
	for i := 0; i < len(lines); {
		if i+1 < len(lines) {
			n := 1
			for i+2*n+1 < len(lines) && lines[i+2*n] == lines[i] && lines[i+2*n+1] == lines[i+1] {
				n++
			}
			if n > 1 {
				out = append(out, lines[i], lines[i+1], fmt.Sprintf("      [the frame above repeated %d times]", n))
				i += 2 * n
				continue
			}
		}
		out = append(out, lines[i])
		i++
	}
	return strings.Join(out, "\n")
}
