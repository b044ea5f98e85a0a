// Package config owns watt.json: finding it, reading the dotenv files it
// depends on, resolving {NAME} placeholders, validating it against the JSON
// Schema embedded in the binary, expanding autoload directories and turning
// the result into the typed Config the supervisor runs. It reads the
// Platformatic Watt runtime format; Watt options that wattd does not
// implement yet are reported as warnings rather than rejected, so an existing
// Watt project loads unchanged, while keys Watt does not know are errors with
// a did-you-mean hint.
//
// Every problem found in a configuration is reported, not only the first,
// as a *Error (or an ErrorList of them) that names the file, the JSON
// pointer of the offending value and what was expected; all of them wrap
// ErrInvalid.
package config
