package nab

import (
	"os"
	"strings"
	"testing"

	"github.com/strata-tsdb/strata/alerting/detect"
)

// TestExplore scores detector specs given in $NAB_SPECS ("name k=v k=v;...").
func TestExplore(t *testing.T) {
	specs := os.Getenv("NAB_SPECS")
	if specs == "" {
		t.Skip()
	}
	files, err := Load(corpusDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range strings.Split(specs, ";") {
		fs := strings.Fields(sp)
		spec := detect.Spec{Detector: fs[0], Params: map[string]string{}}
		for _, kv := range fs[1:] {
			k, v, _ := strings.Cut(kv, "=")
			spec.Params[k] = v
		}
		fac, err := detect.New(spec)
		if err != nil {
			t.Fatal(err)
		}
		d := FromFactory(sp, fac)
		scores := make([][]float64, len(files))
		for i, f := range files {
			scores[i] = d.Scores(f)
		}
		res := Score(files, scores)
		t.Logf("%-50s %6.2f %6.2f %6.2f  (TP %d FP %d thr %.4f)", sp, res[0].Normalized, res[1].Normalized, res[2].Normalized, res[0].TP, res[0].FP, res[0].Threshold)
	}
}
