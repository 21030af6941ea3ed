package protocol

import (
	"encoding/json"
	"testing"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		typ, id string
		data    any
		want    string
	}{
		{TypePong, "7", nil, `{"type":"pong","id":"7"}`},
		{TypeError, "", Error{Code: CodeBadSDP, Message: "no"}, `{"type":"error","data":{"code":"bad_sdp","message":"no"}}`},
		{"chat", "", json.RawMessage(`{"text":"hi"}`), `{"type":"chat","data":{"text":"hi"}}`},
	}
	for _, tc := range tests {
		b, err := Encode(tc.typ, tc.id, tc.data)
		if err != nil || string(b) != tc.want {
			t.Errorf("Encode(%s) = %s, %v; want %s", tc.typ, b, err, tc.want)
		}
	}
	if _, err := Encode("x", "", func() {}); err == nil {
		t.Error("unencodable data accepted")
	}
}
