package otlp

import (
	"flag"
	"fmt"

	"github.com/prometheus/otlptranslator"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Delta temporality handling (Config.DeltaTemporality).
const (
	// DeltaReject refuses sums and histograms of delta temporality: their
	// data points are rejected, and a request of nothing else gets 400.
	DeltaReject = "reject"
	// DeltaNative stores delta data points as they come, as Prometheus's
	// otlp-native-delta-ingestion feature does (the translator's
	// AllowDeltaTemporality): each sample is the increase over its interval,
	// typed unknown; query them with sum_over_time, not rate.
	DeltaNative = "native"
)

// Config configures the OTLP receiver: the settings of Prometheus's otlp:
// configuration section, with the same defaults.
type Config struct {
	Enabled                              bool               `yaml:"enabled"`
	TranslationStrategy                  string             `yaml:"translation_strategy"`
	PromoteResourceAttributes            flagext.StringList `yaml:"promote_resource_attributes"`
	PromoteAllResourceAttributes         bool               `yaml:"promote_all_resource_attributes"`
	IgnoreResourceAttributes             flagext.StringList `yaml:"ignore_resource_attributes"`
	KeepIdentifyingResourceAttributes    bool               `yaml:"keep_identifying_resource_attributes"`
	ConvertHistogramsToNHCB              bool               `yaml:"convert_histograms_to_nhcb"`
	PromoteScopeMetadata                 bool               `yaml:"promote_scope_metadata"`
	LabelNameUnderscoreSanitization      bool               `yaml:"label_name_underscore_sanitization"`
	LabelNamePreserveMultipleUnderscores bool               `yaml:"label_name_preserve_multiple_underscores"`
	DeltaTemporality                     string             `yaml:"delta_temporality"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "otlp.enabled", true, "Serve OTLP/HTTP metrics on /otlp/v1/metrics and /api/v1/otlp/v1/metrics (Prometheus's path), through the same limits and write path as remote write.")
	fs.StringVar(&c.TranslationStrategy, "otlp.translation-strategy", string(otlptranslator.UnderscoreEscapingWithSuffixes),
		"How OTLP metric and label names become Prometheus names, as Prometheus's otlp.translation_strategy: UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes or NoTranslation.")
	fs.Var(&c.PromoteResourceAttributes, "otlp.promote-resource-attributes", "Comma-separated resource attributes made labels of every series of their resource (Prometheus's otlp.promote_resource_attributes).")
	fs.BoolVar(&c.PromoteAllResourceAttributes, "otlp.promote-all-resource-attributes", false, "Make every resource attribute but -otlp.ignore-resource-attributes a label (Prometheus's otlp.promote_all_resource_attributes).")
	fs.Var(&c.IgnoreResourceAttributes, "otlp.ignore-resource-attributes", "Comma-separated resource attributes not promoted by -otlp.promote-all-resource-attributes.")
	fs.BoolVar(&c.KeepIdentifyingResourceAttributes, "otlp.keep-identifying-resource-attributes", false, "Keep service.name, service.namespace and service.instance.id as labels of target_info as well as job and instance.")
	fs.BoolVar(&c.ConvertHistogramsToNHCB, "otlp.convert-histograms-to-nhcb", false, "Store explicit-bucket histograms as native histograms with custom buckets instead of classic _bucket, _sum and _count series.")
	fs.BoolVar(&c.PromoteScopeMetadata, "otlp.promote-scope-metadata", false, "Add the instrumentation scope's name, version, schema URL and attributes as otel_scope_* labels.")
	fs.BoolVar(&c.LabelNameUnderscoreSanitization, "otlp.label-name-underscore-sanitization", true, "With an escaping strategy, prefix label names that start with a single underscore with \"key\" (Prometheus's default).")
	fs.BoolVar(&c.LabelNamePreserveMultipleUnderscores, "otlp.label-name-preserve-multiple-underscores", true, "With an escaping strategy, keep runs of underscores in label names (Prometheus's default).")
	fs.StringVar(&c.DeltaTemporality, "otlp.delta-temporality", DeltaReject,
		"Sums and histograms of delta temporality: reject (their data points are refused, reported in the answer's partial success, 400 when nothing else was sent) or native (stored as sent, as Prometheus's otlp-native-delta-ingestion feature).")
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	switch otlptranslator.TranslationStrategyOption(c.TranslationStrategy) {
	case otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation:
	default:
		return fmt.Errorf("otlp.translation-strategy %q is not one of UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes, NoTranslation", c.TranslationStrategy)
	}
	switch c.DeltaTemporality {
	case DeltaReject, DeltaNative:
	default:
		return fmt.Errorf("otlp.delta-temporality %q is not one of %s, %s", c.DeltaTemporality, DeltaReject, DeltaNative)
	}
	if c.PromoteAllResourceAttributes && len(c.PromoteResourceAttributes) > 0 {
		return fmt.Errorf("otlp.promote-all-resource-attributes and otlp.promote-resource-attributes cannot both be set")
	}
	if !c.PromoteAllResourceAttributes && len(c.IgnoreResourceAttributes) > 0 {
		return fmt.Errorf("otlp.ignore-resource-attributes needs otlp.promote-all-resource-attributes")
	}
	for _, list := range []flagext.StringList{c.PromoteResourceAttributes, c.IgnoreResourceAttributes} {
		seen := map[string]bool{}
		for _, a := range list {
			if seen[a] {
				return fmt.Errorf("otlp: resource attribute %q listed twice", a)
			}
			seen[a] = true
		}
	}
	return nil
}
