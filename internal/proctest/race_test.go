package proctest

import (
	"strings"
	"testing"
)

func TestRaceReports(t *testing.T) {
	frame := "  pkg.f()\n      /src/f.go:1 +0x1\n"
	log := "level=info msg=start\n" +
		"==================\n" + raceStart + "\nRead at 0x1 by goroutine 7:\n" + frame + "\nPrevious write at 0x1 by goroutine 8:\n" +
		strings.Repeat(frame, 50) + "  pkg.g()\n      /src/g.go:2 +0x2\n" + raceEnd + "\n" +
		"level=info msg=more\n" +
		"==================\n" + raceStart + "\nWrite at 0x2 by goroutine 9:\n" + frame + raceEnd + "\n"
	got := RaceReports(log)
	if len(got) != 2 {
		t.Fatalf("got %d reports, want 2:\n%s", len(got), strings.Join(got, "\n---\n"))
	}
	if !strings.Contains(got[0], "[the frame above repeated 50 times]") || strings.Count(got[0], "pkg.f()") != 2 || !strings.Contains(got[0], "pkg.g()") {
		t.Errorf("first report not collapsed as expected:\n%s", got[0])
	}
	if !strings.HasPrefix(got[1], raceStart) || !strings.Contains(got[1], "Write at 0x2") || strings.Contains(got[1], "repeated") {
		t.Errorf("second report:\n%s", got[1])
	}
	if RaceReports("no races here\n") != nil {
		t.Error("reports found in a log without races")
	}
}
