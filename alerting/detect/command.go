package detect

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Command is `strata detect`: it scores a `timestamp,value` CSV file (NAB's
// format; "-" for standard input) with one detector and writes
// `timestamp,value,anomaly_score` to out. args are those after "detect".
// It returns the process exit code.
func Command(args []string, stdin io.Reader, out, errw io.Writer) int {
	// The detector decides which parameter flags exist: find it first.
	name := Default
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, "detector="); ok {
			name = v
		} else if a == "detector" && i+1 < len(args) {
			name = args[i+1]
		}
	}
	fs := flag.NewFlagSet("strata detect", flag.ContinueOnError)
	fs.SetOutput(errw)
	fs.String("detector", Default, "detector: "+kindNames())
	band := fs.Bool("band", false, "also write the raw score and the band: score,lower,upper")
	kind, ok := Lookup(name)
	given := map[string]string{}
	if ok {
		for _, p := range kind.Params {
			def := p.Default
			if def == "" {
				def = "none"
			}
			help := fmt.Sprintf("%s parameter: %s (default %s)", name, p.Help, def)
			set := func(s string) error { given[p.Name] = s; return nil }
			fs.Func(p.Name, help, set)
			if dashed := strings.ReplaceAll(p.Name, "_", "-"); dashed != p.Name {
				fs.Func(dashed, help, set)
			}
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(errw, "Usage: strata detect [--detector NAME] [--PARAM VALUE ...] FILE.csv\n\n"+
			"Scores each row of a timestamp,value CSV (NAB's format; - for standard input)\n"+
			"in order, as the rule evaluator would, and writes timestamp,value,anomaly_score\n"+
			"with the score in [0,1] (0.5 at the band's edge). Default detector: %s.\n\nFlags:\n", Default)
		fs.PrintDefaults()
		fmt.Fprintln(errw, "\nDetectors and their parameters:")
		for _, k := range Kinds() {
			fmt.Fprintf(errw, "  %s: %s\n", k.Name, k.Help)
			for _, p := range k.Params {
				fmt.Fprintf(errw, "      --%s (default %q): %s\n", p.Name, p.Default, p.Help)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if !ok {
		fmt.Fprintf(errw, "strata detect: unknown detector %q (known: %s)\n", name, kindNames())
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	f, err := New(Spec{Detector: name, Params: given})
	if err != nil {
		fmt.Fprintln(errw, "strata detect:", err)
		return 2
	}
	in := stdin
	if path := fs.Arg(0); path != "-" {
		file, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(errw, "strata detect:", err)
			return 1
		}
		defer file.Close()
		in = file
	}
	pts, err := ReadCSV(in)
	if err != nil {
		fmt.Fprintf(errw, "strata detect: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	if err := WriteCSV(out, pts, Score(f, pts), *band); err != nil {
		fmt.Fprintln(errw, "strata detect: write:", err)
		return 1
	}
	return 0
}

func kindNames() string {
	var names []string
	for _, k := range Kinds() {
		names = append(names, k.Name)
	}
	return strings.Join(names, ", ")
}
