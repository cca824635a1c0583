// Package config lets every flag of a dfs command also be set in the
// environment and in a config file, and shows where each setting came
// from. Precedence, highest first: the command line, the environment
// (PREFIX + flag name in capitals, dashes as underscores, for example
// DFSCHUNK_LOG_LEVEL), the config file named by -config, the flag's
// default.
//
// A config file holds one setting a line, named as the flag is:
//
//	# comment
//	data = /var/lib/dfs/chunk
//	log-level = info   # a comment after a value needs a blank before #
//	zone = "rack 1"    # Go-quoted when the value needs it
//
// Keys may use underscores for dashes. A key may appear once. Unknown
// keys, bad values and malformed lines are errors naming FILE:LINE and the
// key.
package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Source names where settings came from.
const (
	FromDefault     = "default"
	FromCommandLine = "command line"
)

// Settings is the -config and -print-config machinery added to one
// command's flag set.
type Settings struct {
	fs        *flag.FlagSet
	prog      string
	envPrefix string
	file      *string
	print     *bool
	source    map[string]string // flag name -> where its value came from
}

// Register adds -config FILE and -print-config to fs. prog names the
// command in errors; envPrefix is its environment prefix ("DFSMASTER_").
func Register(fs *flag.FlagSet, prog, envPrefix string) *Settings {
	return &Settings{
		fs:        fs,
		prog:      prog,
		envPrefix: envPrefix,
		file:      fs.String("config", "", "config file of KEY = VALUE lines, one per flag (env "+envPrefix+"CONFIG)"),
		print:     fs.Bool("print-config", false, "print every setting, its value and where it came from, then exit"),
		source:    map[string]string{},
	}
}

// EnvName is the environment variable that sets flag name.
func (s *Settings) EnvName(name string) string {
	return s.envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Load fills in, after fs.Parse, every flag the command line left unset:
// from the environment, else from the config file, else its default.
func (s *Settings) Load() error {
	s.fs.Visit(func(f *flag.Flag) { s.source[f.Name] = FromCommandLine })
	var err error
	// -config itself first: it may come from the environment.
	s.fs.VisitAll(func(f *flag.Flag) {
		if err == nil && s.source[f.Name] == "" {
			err = s.fromEnv(f)
		}
	})
	if err != nil {
		return err
	}
	if *s.file == "" {
		s.defaults()
		return nil
	}
	lines, err := Parse(*s.file)
	if err != nil {
		return err
	}
	for _, l := range lines {
		name := strings.ReplaceAll(l.Key, "_", "-")
		f := s.fs.Lookup(name)
		if f == nil || name == "config" || name == "print-config" {
			return fmt.Errorf("%s:%d: unknown key %q (%s has no -%s setting)", l.File, l.Line, l.Key, s.prog, name)
		}
		if s.source[name] != "" {
			continue // the command line or environment wins
		}
		if err := f.Value.Set(l.Value); err != nil {
			return fmt.Errorf("%s:%d: %s = %s: %v", l.File, l.Line, l.Key, l.Value, err)
		}
		s.source[name] = fmt.Sprintf("%s:%d", l.File, l.Line)
	}
	s.defaults()
	return nil
}

func (s *Settings) fromEnv(f *flag.Flag) error {
	if f.Name == "print-config" {
		return nil
	}
	name := s.EnvName(f.Name)
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil
	}
	if err := f.Value.Set(v); err != nil {
		return fmt.Errorf("%s=%s: %v", name, v, err)
	}
	s.source[f.Name] = "environment $" + name
	return nil
}

func (s *Settings) defaults() {
	s.fs.VisitAll(func(f *flag.Flag) {
		if s.source[f.Name] == "" {
			s.source[f.Name] = FromDefault
		}
	})
}

// PrintRequested reports whether -print-config was given.
func (s *Settings) PrintRequested() bool { return *s.print }

// Source says where flag name's value came from: FromDefault,
// FromCommandLine, "environment $NAME" or "FILE:LINE".
func (s *Settings) Source(name string) string { return s.source[name] }

// Print writes the effective settings as a config file that Load would
// read back, each line followed by a comment naming its source.
func (s *Settings) Print(w io.Writer) {
	fmt.Fprintf(w, "# %s settings: KEY = VALUE  # where the value came from\n", s.prog)
	if *s.file != "" {
		fmt.Fprintf(w, "# config file %s (%s)\n", *s.file, s.source["config"])
	}
	var names []string
	width := 0
	s.fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && f.Name != "print-config" {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	lines := make([]string, len(names))
	for i, n := range names {
		lines[i] = n + " = " + quote(s.fs.Lookup(n).Value.String())
		width = max(width, len(lines[i]))
	}
	for i, n := range names {
		fmt.Fprintf(w, "%-*s  # %s\n", width, lines[i], s.source[n])
	}
}

// quote writes v so that Parse reads it back unchanged.
func quote(v string) string {
	if v == "" || v != strings.TrimSpace(v) || strings.HasPrefix(v, `"`) || strings.Contains(v, "#") || !strconv.CanBackquote(v) {
		return strconv.Quote(v)
	}
	return v
}

// Line is one KEY = VALUE setting of a config file.
type Line struct {
	File  string
	Line  int
	Key   string
	Value string
}

// Parse reads a config file. It checks the syntax and that no key repeats;
// whether keys and values mean anything is for the caller.
func Parse(path string) ([]Line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	defer f.Close()
	return parse(path, f)
}

func parse(path string, r io.Reader) ([]Line, error) {
	var lines []Line
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == ';' {
			continue
		}
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
		}
		key, val, ok := strings.Cut(text, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t\"") {
			return nil, fail("want KEY = VALUE, got %q", text)
		}
		val, err := value(strings.TrimSpace(val))
		if err != nil {
			return nil, fail("%s: %v", key, err)
		}
		norm := strings.ReplaceAll(key, "_", "-")
		if prev, dup := seen[norm]; dup {
			return nil, fail("%s: already set on line %d", key, prev)
		}
		seen[norm] = n
		lines = append(lines, Line{File: path, Line: n, Key: key, Value: val})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lines, nil
}

// value strips a trailing comment and undoes quoting.
func value(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		q, err := strconv.QuotedPrefix(v)
		if err != nil {
			return "", errors.New("unterminated or malformed quoted value")
		}
		rest := strings.TrimSpace(v[len(q):])
		if rest != "" && rest[0] != '#' {
			return "", fmt.Errorf("unexpected %q after the quoted value", rest)
		}
		return strconv.Unquote(q)
	}
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			return strings.TrimSpace(v[:i]), nil
		}
	}
	if strings.HasPrefix(v, "#") {
		return "", nil
	}
	return v, nil
}
