// Package config owns watt.json: finding it (or its YAML and TOML forms,
// by Watt's list of names), reading the dotenv files it depends on,
// resolving {NAME} placeholders, validating it against the JSON Schema
// embedded in the binary, expanding autoload directories, reading each
// application's own Watt configuration file, and turning the result into
// the typed Config the supervisor runs. It reads the Platformatic Watt
// runtime format, 2.x and 3.x: every key Watt's schemas accept either works
// or loads with one warning saying what wattd does instead (see
// docs/watt-compat.md), so an existing Watt project loads unchanged, while
// keys Watt does not know are errors with a did-you-mean hint.
//
// Every problem found in a configuration is reported, not only the first,
// as a *Error (or an ErrorList of them) that names the file, the JSON
// pointer of the offending value (and the line, for YAML) and what was
// expected; all of them wrap ErrInvalid.
package config
