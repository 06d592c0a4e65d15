package crdt

import "github.com/convergedb/converge/internal/mp"

// Metadata fields: names a query, an ordering or an index can use for a
// record's metadata as if they were fields. Field names starting with
// [MetaPrefix] are reserved for them; no record field may take one.
const (
	// MetaPrefix starts every metadata field name.
	MetaPrefix = "$"
	// FieldCreated is the instant of the record's first write since it
	// was (re-)created: Created.HLC's wall time, a msgpack timestamp.
	FieldCreated = "$created"
	// FieldUpdated is the instant of the record's latest write: Updated's
	// wall time, a msgpack timestamp.
	FieldUpdated = "$updated"
	// FieldOrigin is the replica that created the record (Created's
	// replica), as the string of its id.
	FieldOrigin = "$origin"
	// FieldUpdatedBy is the replica that wrote the record last (Updated's
	// replica), as the string of its id.
	FieldUpdatedBy = "$updatedBy"
	// FieldVersion is [Record.Applied], an unsigned integer.
	FieldVersion = "$version"
)

// IsMetaField reports whether name is one of the metadata fields.
func IsMetaField(name string) bool {
	if len(name) == 0 || name[0] != MetaPrefix[0] {
		return false
	}
	switch name {
	case FieldCreated, FieldUpdated, FieldOrigin, FieldUpdatedBy, FieldVersion:
		return true
	}
	return false
}

// MetaFieldValue returns the msgpack value of metadata field name of r,
// and false if name is no metadata field. A record that does not exist
// has none (an empty value, as a missing field).
func MetaFieldValue(r *Record, name string) ([]byte, bool) {
	if !IsMetaField(name) {
		return nil, false
	}
	if r == nil || !r.Exists() {
		return nil, true
	}
	switch name {
	case FieldCreated:
		return EncodeTime(r.Created.HLC.Time()), true
	case FieldUpdated:
		return EncodeTime(r.Updated.HLC.Time()), true
	case FieldOrigin:
		return mp.AppendString(nil, r.Created.Replica.String()), true
	case FieldUpdatedBy:
		return mp.AppendString(nil, r.Updated.Replica.String()), true
	}
	return mp.AppendUint(nil, r.Applied), true
}
