package nbd

// Protocol constants from the NBD specification (doc/proto.md).
const (
	nbdMagic       = 0x4e42444d41474943 // "NBDMAGIC"
	optMagic       = 0x49484156454f5054 // "IHAVEOPT"
	optReplyMagic  = 0x3e889045565a9
	requestMagic   = 0x25609513
	simpleReplyMag = 0x67446698

	structuredReplyMag = 0x668e33ef
	oldstyleMagic      = 0x00420281861253 // "cliserv" magic of the oldstyle handshake

	// Handshake flags (server) and client flags.
	flagFixedNewstyle  = 1 << 0
	flagNoZeroes       = 1 << 1
	clientFixedNewstyl = 1 << 0
	clientNoZeroes     = 1 << 1

	// Options.
	optExportName      = 1
	optAbort           = 2
	optList            = 3
	optPeekExport      = 4
	optStartTLS        = 5
	optInfo            = 6
	optGo              = 7
	optStructuredReply = 8
	optListMetaContext = 9
	optSetMetaContext  = 10
	optExtendedHeaders = 11

	// Option reply types.
	repAck           = 1
	repServer        = 2
	repInfo          = 3
	repErrUnsup      = 1<<31 + 1
	repErrPolicy     = 1<<31 + 2
	repErrInvalid    = 1<<31 + 3
	repErrPlatform   = 1<<31 + 4
	repErrTLSReqd    = 1<<31 + 5
	repErrUnknown    = 1<<31 + 6
	repErrShutdown   = 1<<31 + 7
	repErrBlockSize  = 1<<31 + 8
	repErrTooBig     = 1<<31 + 9
	infoExport       = 0
	infoName         = 1
	infoDescription  = 2
	infoBlockSize    = 3
	exportNameZeroes = 124

	// Transmission flags.
	tfHasFlags        = 1 << 0
	tfReadOnly        = 1 << 1
	tfSendFlush       = 1 << 2
	tfSendFUA         = 1 << 3
	tfRotational      = 1 << 4
	tfSendTrim        = 1 << 5
	tfSendWriteZeroes = 1 << 6
	tfCanMultiConn    = 1 << 8

	// Commands.
	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	cmdTrim        = 4
	cmdCache       = 5
	cmdWriteZeroes = 6
	cmdBlockStatus = 7

	// Command flags.
	cmdFlagFUA    = 1 << 0
	cmdFlagNoHole = 1 << 1

	// Errors in simple replies.
	errnoOK        = 0
	errnoPerm      = 1
	errnoIO        = 5
	errnoNoMem     = 12
	errnoInval     = 22
	errnoNoSpc     = 28
	errnoOverflow  = 75
	errnoNotSup    = 95
	errnoShutdown  = 108
	requestHdrSize = 28
	replyHdrSize   = 16

	// maxOptionLen bounds the data of one option; longer options end the
	// connection (no sane option is near it: names are at most 4096 bytes).
	maxOptionLen = 16 << 10
	// maxNameLen is the spec's limit on export names.
	maxNameLen = 4096
)
