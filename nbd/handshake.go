package nbd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// errAborted ends a session the client closed with NBD_OPT_ABORT.
var errAborted = errors.New("client aborted the handshake")

// errProtocol marks handshake input that ends the connection.
var errProtocol = errors.New("nbd protocol violation")

// handshake is the fixed newstyle negotiation on one connection.
type handshake struct {
	s        *Server
	rw       io.ReadWriter
	br       *bufio.Reader
	log      *slog.Logger
	noZeroes bool
}

// option is one client option after its header.
type option struct {
	code uint32
	data []byte
}

// run greets the client and haggles options until one selects an export.
func (h *handshake) run() (Export, string, error) {
	h.br = bufio.NewReaderSize(h.rw, 32<<10) // WRITE payloads beyond this bypass the buffer
	greet := binary.BigEndian.AppendUint64(nil, nbdMagic)
	greet = binary.BigEndian.AppendUint64(greet, optMagic)
	greet = binary.BigEndian.AppendUint16(greet, flagFixedNewstyle|flagNoZeroes)
	if _, err := h.rw.Write(greet); err != nil {
		return nil, "", err
	}
	var b [4]byte
	if _, err := io.ReadFull(h.br, b[:]); err != nil {
		return nil, "", fmt.Errorf("read client flags: %w", err)
	}
	flags := binary.BigEndian.Uint32(b[:])
	if flags&^(clientFixedNewstyl|clientNoZeroes) != 0 {
		return nil, "", fmt.Errorf("%w: unknown client flags %#x", errProtocol, flags)
	}
	if flags&clientFixedNewstyl == 0 {
		return nil, "", fmt.Errorf("%w: client does not speak fixed newstyle (flags %#x)", errProtocol, flags)
	}
	h.noZeroes = flags&clientNoZeroes != 0
	for {
		opt, err := readOption(h.br)
		if err != nil {
			return nil, "", err
		}
		exp, name, err := h.handle(opt)
		if exp != nil || err != nil {
			return exp, name, err
		}
	}
}

// readOption reads one option header and its data.
func readOption(r io.Reader) (option, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return option{}, fmt.Errorf("read option: %w", err)
	}
	if m := binary.BigEndian.Uint64(hdr[:]); m != optMagic {
		return option{}, fmt.Errorf("%w: option magic %#x, want IHAVEOPT", errProtocol, m)
	}
	o := option{code: binary.BigEndian.Uint32(hdr[8:])}
	n := binary.BigEndian.Uint32(hdr[12:])
	if n > maxOptionLen {
		return option{}, fmt.Errorf("%w: option %d with %d bytes of data, limit %d", errProtocol, o.code, n, maxOptionLen)
	}
	o.data = make([]byte, n)
	if _, err := io.ReadFull(r, o.data); err != nil {
		return option{}, fmt.Errorf("read option %d data: %w", o.code, err)
	}
	return o, nil
}

// handle answers one option; it returns the export once one is selected.
func (h *handshake) handle(o option) (Export, string, error) {
	switch o.code {
	case optExportName:
		return h.exportName(string(o.data))
	case optAbort:
		h.reply(o.code, repAck, nil) // best effort: the client may already be gone
		return nil, "", errAborted
	case optList:
		return nil, "", h.list(o)
	case optInfo, optGo:
		return h.infoGo(o)
	}
	h.log.Debug("nbd: unsupported option", "option", o.code)
	return nil, "", h.replyErr(o.code, repErrUnsup, fmt.Sprintf("option %d not supported", o.code))
}

// reply sends one option reply.
func (h *handshake) reply(code, typ uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 20+len(data)), optReplyMagic)
	b = binary.BigEndian.AppendUint32(b, code)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	_, err := h.rw.Write(b)
	return err
}

// replyErr sends an error reply with a message for humans.
func (h *handshake) replyErr(code, typ uint32, msg string) error {
	return h.reply(code, typ, []byte(msg))
}

// lookup validates a requested export name and finds the export.
func (h *handshake) lookup(name string) (Export, error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownExport, err)
	}
	exp, err := h.s.Exports.Lookup(name)
	if err == nil && exp == nil {
		err = fmt.Errorf("export %q: %w", name, ErrUnknownExport)
	}
	return exp, err
}

// exportName handles NBD_OPT_EXPORT_NAME (old clients): no error reply is
// possible, an unknown export closes the connection.
func (h *handshake) exportName(name string) (Export, string, error) {
	exp, err := h.lookup(name)
	if err != nil {
		return nil, "", fmt.Errorf("NBD_OPT_EXPORT_NAME: %w", err)
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(exp.Size()))
	b = binary.BigEndian.AppendUint16(b, transmissionFlags(exp))
	if !h.noZeroes {
		b = append(b, make([]byte, exportNameZeroes)...)
	}
	if _, err := h.rw.Write(b); err != nil {
		return nil, "", err
	}
	return exp, name, nil
}

// list handles NBD_OPT_LIST.
func (h *handshake) list(o option) error {
	if len(o.data) != 0 {
		return h.replyErr(o.code, repErrInvalid, "NBD_OPT_LIST takes no data")
	}
	for _, n := range h.s.Exports.Names() {
		d := binary.BigEndian.AppendUint32(nil, uint32(len(n)))
		if err := h.reply(o.code, repServer, append(d, n...)); err != nil {
			return err
		}
	}
	return h.reply(o.code, repAck, nil)
}

// parseInfoRequest parses the data of NBD_OPT_INFO / NBD_OPT_GO: export
// name and the list of requested information types.
func parseInfoRequest(d []byte) (string, []uint16, error) {
	if len(d) < 4 {
		return "", nil, errors.New("short option data")
	}
	n := binary.BigEndian.Uint32(d)
	if n > maxNameLen || uint64(len(d)) < 4+uint64(n)+2 {
		return "", nil, fmt.Errorf("export name length %d does not fit option data of %d bytes", n, len(d))
	}
	name := string(d[4 : 4+n])
	rest := d[4+n:]
	k := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*k {
		return "", nil, fmt.Errorf("%d information requests need %d bytes, have %d", k, 2*k, len(rest))
	}
	infos := make([]uint16, k)
	for i := range infos {
		infos[i] = binary.BigEndian.Uint16(rest[2*i:])
	}
	return name, infos, nil
}

// infoGo handles NBD_OPT_INFO and NBD_OPT_GO.
func (h *handshake) infoGo(o option) (Export, string, error) {
	name, infos, err := parseInfoRequest(o.data)
	if err != nil {
		return nil, "", h.replyErr(o.code, repErrInvalid, err.Error())
	}
	exp, err := h.lookup(name)
	if err != nil {
		h.log.Info("nbd: export refused", "name", clip(name), "err", err)
		typ := uint32(repErrUnknown)
		if !errors.Is(err, ErrUnknownExport) {
			typ = repErrPlatform
		}
		return nil, "", h.replyErr(o.code, typ, err.Error())
	}
	d := binary.BigEndian.AppendUint16(nil, infoExport)
	d = binary.BigEndian.AppendUint64(d, uint64(exp.Size()))
	d = binary.BigEndian.AppendUint16(d, transmissionFlags(exp))
	if err := h.reply(o.code, repInfo, d); err != nil {
		return nil, "", err
	}
	d = binary.BigEndian.AppendUint16(nil, infoBlockSize)
	d = binary.BigEndian.AppendUint32(d, 1)
	d = binary.BigEndian.AppendUint32(d, 4096)
	d = binary.BigEndian.AppendUint32(d, uint32(h.s.MaxRequest))
	if err := h.reply(o.code, repInfo, d); err != nil {
		return nil, "", err
	}
	for _, t := range infos {
		if t == infoName {
			d = binary.BigEndian.AppendUint16(nil, infoName)
			if err := h.reply(o.code, repInfo, append(d, name...)); err != nil {
				return nil, "", err
			}
		}
	}
	if err := h.reply(o.code, repAck, nil); err != nil {
		return nil, "", err
	}
	if o.code == optGo {
		return exp, name, nil
	}
	return nil, "", nil
}

// transmissionFlags are the flags sent with an export's size.
func transmissionFlags(e Export) uint16 {
	f := uint16(tfHasFlags | tfSendFlush | tfSendFUA | tfSendTrim | tfSendWriteZeroes)
	if e.ReadOnly() {
		f |= tfReadOnly
	}
	return f
}

// validName checks an export name: 1..64 of [A-Za-z0-9_-] (the volume name
// rule), so names like "../x" never reach Exports.Lookup.
func validName(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return fmt.Errorf("export name %q: length %d not in 1..64", clip(s), len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("export name %q: byte %q at %d not in [A-Za-z0-9_-]", clip(s), c, i)
		}
	}
	return nil
}
