package nab

import (
	"math"
	"testing"
)

// nabWindowedGaussian is each file's raw score in NAB's own scoring of its
// stored windowed-Gaussian results, standard profile, threshold 1.0 (NAB's
// results/windowedGaussian/windowedGaussian_standard_scores.csv).
var nabWindowedGaussian = map[string]float64{
	"artificialNoAnomaly/art_daily_perfect_square_wave.csv":    0,
	"artificialWithAnomaly/art_increase_spike_density.csv":     -1.0,
	"realTweets/Twitter_volume_PFE.csv":                        0.26557999349,
	"realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv":        -1.09599853032,
	"artificialWithAnomaly/art_daily_jumpsdown.csv":            -1.0,
	"realAWSCloudwatch/grok_asg_anomaly.csv":                   2.37942230674,
	"realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv":         -2.0,
	"realTweets/Twitter_volume_AAPL.csv":                       1.51399683626,
	"realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv":        -4.19089678552,
	"realTweets/Twitter_volume_IBM.csv":                        -0.799109479229,
	"realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv":         -1.26667875935,
	"realAdExchange/exchange-4_cpm_results.csv":                1.27471036268,
	"realTweets/Twitter_volume_CVS.csv":                        0.773682061394,
	"artificialWithAnomaly/art_daily_jumpsup.csv":              -1.0,
	"artificialWithAnomaly/art_daily_flatmiddle.csv":           -1.0,
	"realAdExchange/exchange-2_cpm_results.csv":                -2.0,
	"realAWSCloudwatch/ec2_network_in_257a54.csv":              0.86067182427,
	"artificialNoAnomaly/art_flatline.csv":                     0.0,
	"realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv":         -0.141423196117,
	"realTweets/Twitter_volume_GOOG.csv":                       -0.146777355167,
	"artificialWithAnomaly/art_load_balancer_spikes.csv":       -0.692444609523,
	"realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv":         0.956537840284,
	"realAdExchange/exchange-3_cpc_results.csv":                2.50266326119,
	"realTweets/Twitter_volume_FB.csv":                         0.119750278191,
	"realAdExchange/exchange-4_cpc_results.csv":                0.292288463428,
	"artificialWithAnomaly/art_daily_nojump.csv":               -1.0,
	"realAWSCloudwatch/ec2_network_in_5abac7.csv":              -3.52193223519,
	"realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv":         -0.138449197924,
	"realAdExchange/exchange-3_cpm_results.csv":                0.862098587352,
	"artificialNoAnomaly/art_daily_no_noise.csv":               0.0,
	"realTweets/Twitter_volume_KO.csv":                         -0.914196106944,
	"realTweets/Twitter_volume_AMZN.csv":                       1.55848299457,
	"realAWSCloudwatch/elb_request_count_8c0756.csv":           -0.138449197924,
	"artificialNoAnomaly/art_daily_small_noise.csv":            0.0,
	"realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv":         -1.32,
	"realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv":         -0.138449197924,
	"realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv":         -1.0,
	"realTweets/Twitter_volume_UPS.csv":                        -2.2051646682,
	"realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv":         0.86067182427,
	"artificialNoAnomaly/art_noisy.csv":                        0.0,
	"realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv":         0.638757791772,
	"realTweets/Twitter_volume_CRM.csv":                        0.763845764094,
	"realAdExchange/exchange-2_cpc_results.csv":                -1.0,
	"realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv": -2.0,
}

// TestScorerReproducesNAB checks the scorer against NAB's own: the windowed
// Gaussian, rebuilt as NAB's stored results were produced, earns each file
// the raw score NAB gives it, and the corpus the normalised scores NAB's
// results give these 36 files (40.86, 15.66, 50.59). In two tweet files the
// rebuilt detector has one false positive more than NAB's stored output (a
// spike far from any window; NAB's stored file was made by an older version
// of the detector), which costs the corpus 0.16 (standard), 0.32
// (reward_low_FP) and 0.23 (reward_low_FN) points.
func TestScorerReproducesNAB(t *testing.T) {
	files, err := Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	wg := WindowedGaussian()
	scores := make([][]float64, len(files))
	for i, f := range files {
		scores[i] = wg.Scores(f)
		want, ok := nabWindowedGaussian[f.Name]
		if !ok {
			t.Fatalf("no NAB score for %s", f.Name)
		}
		got := categories(files[i:i+1], []labels{label(f)}, scores[i:i+1], Profiles[0], 1.0)[0].Raw
		switch f.Name {
		case "realTweets/Twitter_volume_AAPL.csv", "realTweets/Twitter_volume_UPS.csv":
			// One false positive more than NAB's stored output, far from any window.
			if d := want - got; d < 0.10 || d > 0.11 {
				t.Errorf("%s: raw %.5f, NAB %.5f: want exactly one more false positive", f.Name, got, want)
			}
		default:
			if math.Abs(got-want) > 1e-6 {
				t.Errorf("%s: raw %.5f, NAB %.5f", f.Name, got, want)
			}
		}
	}
	res := Score(files, scores)
	for i, want := range []float64{40.86, 15.66, 50.59} {
		if d := want - res[i].Normalized; d < 0 || d > 0.35 {
			t.Errorf("%s: %.2f, NAB %.2f", res[i].Profile, res[i].Normalized, want)
		}
	}
	t.Logf("windowed Gaussian: %.2f %.2f %.2f (NAB 40.86 15.66 50.59)", res[0].Normalized, res[1].Normalized, res[2].Normalized)
}
