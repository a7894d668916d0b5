package config

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/prometheus/common/model"
)

// Setting is one configuration setting as the reference documents it. It is
// derived from the flag declarations and the yaml tags of the root's
// structs, so the reference cannot drift from the code.
type Setting struct {
	// Flag is the flag's name without the dash; empty for YAML-only keys.
	Flag string
	// YAMLPath is the dotted path of the YAML key, e.g.
	// "storage.out_of_order_window"; "[]" marks the elements of a list and
	// "<key>" the keys of a map. Empty for flag-only settings.
	YAMLPath string
	// Type is a readable name of the value's type.
	Type string
	// Default is the default value as the flag prints it; empty when none.
	Default string
	// Help is the flag's usage text, or for a YAML-only key the help tag of
	// its struct field (`help:"..."`).
	Help string
}

// Section is the first element of the setting's YAML path (or of its flag
// name for flag-only settings).
func (s Setting) Section() string {
	if s.YAMLPath == "" {
		return ""
	}
	sec, _, _ := strings.Cut(s.YAMLPath, ".")
	return sec
}

// Settings returns every setting of the configuration newRoot returns: each
// flag, matched to the YAML key of the field it is bound to, and each YAML
// key no flag sets. The order is the declaration order of the fields,
// flag-only settings first.
func Settings(newRoot func() Root) []Setting {
	c := newRoot()
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	c.RegisterFlags(fs)

	// Flags by the address of the variable they set: every flag.Value of
	// the standard library and of Strata is a pointer to its variable.
	byAddr := map[uintptr]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		v := reflect.ValueOf(f.Value)
		if v.Kind() == reflect.Pointer {
			byAddr[v.Pointer()] = f
		}
	})

	var keyed []Setting
	matched := map[string]bool{}
	root := reflect.ValueOf(c).Elem()
	walkYAML(root, root.Type(), "", func(path string, t reflect.Type, addr uintptr, help string) {
		s := Setting{YAMLPath: path, Type: typeName(t), Help: help}
		if f, ok := byAddr[addr]; ok && addr != 0 {
			s.Flag, s.Default, s.Help = f.Name, f.DefValue, f.Usage
			matched[f.Name] = true
		}
		keyed = append(keyed, s)
	})
	var out []Setting
	fs.VisitAll(func(f *flag.Flag) {
		if !matched[f.Name] {
			out = append(out, Setting{Flag: f.Name, Type: flagType(f), Default: f.DefValue, Help: f.Usage})
		}
	})
	return append(out, keyed...)
}

var (
	durationType  = reflect.TypeOf(model.Duration(0))
	flagValueType = reflect.TypeOf((*flag.Value)(nil)).Elem()
)

// walkYAML calls leaf for every YAML leaf key under v (of type t; v is
// invalid below maps and lists, where no value exists), with the address of
// the field when there is one and the field's help tag. A struct field's
// help tag documents a YAML-only key: flags document the others.
func walkYAML(v reflect.Value, t reflect.Type, prefix string, leaf func(path string, t reflect.Type, addr uintptr, help string)) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		path := prefix
		if opts != "inline" {
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			path = join(prefix, name)
		}
		walkField(fv, f.Type, path, f.Tag.Get("help"), leaf)
	}
}

func walkField(fv reflect.Value, t reflect.Type, path, help string, leaf func(path string, t reflect.Type, addr uintptr, help string)) {
	switch {
	case t.Kind() == reflect.Struct && !isScalar(t):
		walkYAML(fv, t, path, leaf)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !isScalar(t.Elem()):
		walkYAML(reflect.Value{}, t.Elem(), path+"[]", leaf)
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Struct && !isScalar(t.Elem()):
		walkYAML(reflect.Value{}, t.Elem(), path+".<key>", leaf)
	default:
		var addr uintptr
		if fv.IsValid() && fv.CanAddr() {
			addr = fv.Addr().Pointer()
		}
		leaf(path, t, addr, help)
	}
}

// isScalar reports whether a struct type is one value in YAML (it decodes
// itself or is a flag value).
func isScalar(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	if pt.Implements(flagValueType) {
		return true
	}
	_, ok := pt.MethodByName("UnmarshalYAML")
	return ok
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// typeName names t for readers of the reference.
func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "list of strings"
		}
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

// flagType names the type of a flag bound to no Config field.
func flagType(f *flag.Flag) string {
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		return "bool"
	}
	v := reflect.ValueOf(f.Value)
	if v.Kind() == reflect.Pointer {
		return typeName(v.Type().Elem())
	}
	return typeName(v.Type())
}

// Markers delimit the generated reference inside a Markdown file.
const (
	ReferenceBegin = "<!-- BEGIN GENERATED CONFIGURATION REFERENCE: `make docs` rewrites this part; do not edit it by hand -->"
	ReferenceEnd   = "<!-- END GENERATED CONFIGURATION REFERENCE -->"
)

// WriteReference writes the Markdown reference of every setting of
// newRoot's configuration to w: one table per YAML section, plus the flags
// no YAML key sets.
func WriteReference(w io.Writer, newRoot func() Root) error {
	var b bytes.Buffer
	settings := Settings(newRoot)
	section := "\x00"
	for _, s := range settings {
		if sec := s.Section(); sec != section {
			section = sec
			if sec == "" {
				b.WriteString("### Command line only\n\n")
			} else {
				fmt.Fprintf(&b, "\n### `%s:`\n\n", sec)
			}
			b.WriteString("| flag | YAML key | type | default | meaning |\n|---|---|---|---|---|\n")
		}
		flagCell, keyCell, help := "", "", s.Help
		if s.Flag != "" {
			flagCell = "`-" + s.Flag + "`"
		}
		if s.YAMLPath != "" {
			keyCell = "`" + s.YAMLPath + "`"
		}
		if s.Flag == "" {
			help = strings.TrimSpace("YAML only. " + help)
		} else if s.YAMLPath == "" {
			help += " (No YAML key.)"
		}
		def := ""
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", flagCell, keyCell, s.Type, cell(def), cell(help))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// Reference returns WriteReference's Markdown.
func Reference(newRoot func() Root) string {
	var b strings.Builder
	_ = WriteReference(&b, newRoot)
	return b.String()
}

// ReplaceReference returns doc with the text between ReferenceBegin and
// ReferenceEnd replaced by the current reference.
func ReplaceReference(doc string, newRoot func() Root) (string, error) {
	i := strings.Index(doc, ReferenceBegin)
	j := strings.Index(doc, ReferenceEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("the markers %q and %q are missing or out of order", ReferenceBegin, ReferenceEnd)
	}
	return doc[:i+len(ReferenceBegin)] + "\n" + Reference(newRoot) + doc[j:], nil
}

// UpdateReferenceFile rewrites the generated part of the Markdown file path.
func UpdateReferenceFile(path string, newRoot func() Root) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc, err := ReplaceReference(string(b), newRoot)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if doc == string(b) {
		return nil
	}
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
