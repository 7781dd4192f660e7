package journal

// Split cuts a sealed journal file into its metadata (header, index and
// footer, in that order, newly allocated) and its payload region (a slice of
// file), after checking the header and the footer like Layout; Parse
// validates the rest. The WAN proxies send the two apart: the payload to the
// deduplicating chunker, the metadata compressed. Join puts them back.
func Split(file []byte) (meta, payload []byte, err error) {
	off, n, err := Layout(file)
	if err != nil {
		return nil, nil, err
	}
	meta = make([]byte, 0, int64(len(file))-n)
	meta = append(append(meta, file[:off]...), file[off+n:]...)
	return meta, file[off : off+n], nil
}

// Join is the inverse of Split: it returns a new file with payload between
// meta's header and its index. meta's header and footer are checked, and
// its footer must place a payload region of exactly len(payload) bytes
// right after the header, so a metadata and payload that do not belong
// together are an error wrapping ErrCorrupt (or the header's fault), not a
// wrong file. The contents (CRCs, SHA-256) are not checked: Parse does,
// and so does a receiver that compares the file's SHA-256.
func Join(meta, payload []byte) ([]byte, error) {
	const name = "(join)"
	if len(meta) < HeaderSize+FooterSize {
		return nil, formatErr(name, ErrTruncated, "metadata of %d bytes, shorter than header plus footer (%d)", len(meta), HeaderSize+FooterSize)
	}
	if _, err := decodeHeader(name, meta); err != nil {
		return nil, err
	}
	size := int64(len(meta)) + int64(len(payload))
	ft, err := decodeFooterAt(name, meta[len(meta)-FooterSize:], size)
	if err != nil {
		return nil, err
	}
	if ft.PayloadLen != int64(len(payload)) {
		return nil, formatErr(name, ErrCorrupt, "footer says a payload of %d bytes, got %d", ft.PayloadLen, len(payload))
	}
	file := make([]byte, 0, size)
	file = append(file, meta[:ft.PayloadOff]...)
	file = append(file, payload...)
	return append(file, meta[ft.PayloadOff:]...), nil
}
