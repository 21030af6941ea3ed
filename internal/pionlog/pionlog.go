// Package pionlog routes pion's logging into a *slog.Logger.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory is a logging.LoggerFactory writing to a slog.Logger. Pion's
// Info is mapped to Debug because pion reports routine events at Info;
// Warn and Error keep their level.
type Factory struct {
	Logger *slog.Logger
}

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	l := f.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &logger{l: l.With("pion", scope)}
}

type logger struct{ l *slog.Logger }

func (x *logger) log(level slog.Level, msg string) {
	if x.l.Enabled(context.Background(), level) {
		x.l.Log(context.Background(), level, msg)
	}
}

func (x *logger) logf(level slog.Level, format string, args ...any) {
	if x.l.Enabled(context.Background(), level) {
		x.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (x *logger) Trace(msg string)                  {}
func (x *logger) Tracef(format string, args ...any) {}
func (x *logger) Debug(msg string)                  { x.log(slog.LevelDebug-4, msg) }
func (x *logger) Debugf(format string, args ...any) { x.logf(slog.LevelDebug-4, format, args...) }
func (x *logger) Info(msg string)                   { x.log(slog.LevelDebug, msg) }
func (x *logger) Infof(format string, args ...any)  { x.logf(slog.LevelDebug, format, args...) }
func (x *logger) Warn(msg string)                   { x.log(slog.LevelWarn, msg) }
func (x *logger) Warnf(format string, args ...any)  { x.logf(slog.LevelWarn, format, args...) }
func (x *logger) Error(msg string)                  { x.log(slog.LevelError, msg) }
func (x *logger) Errorf(format string, args ...any) { x.logf(slog.LevelError, format, args...) }
