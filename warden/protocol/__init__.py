"""The wire protocol: the catalogue from `spec/`, frame decoding, validation, encoding."""

from .catalogue import Catalogue, Field, Message, catalogue
from .codec import (
    FrameReader,
    FrameRefused,
    InvalidRequest,
    MalformedStream,
    check_handle,
    encode_error,
    encode_request,
    encode_response,
    encode_response_parts,
    encode_stream_data,
    pack,
    parse_message,
    parse_request,
    wire_fields,
)
from .requests import REQUESTS, Request

__all__ = [
    "REQUESTS",
    "Catalogue",
    "Field",
    "FrameReader",
    "FrameRefused",
    "InvalidRequest",
    "MalformedStream",
    "Message",
    "Request",
    "catalogue",
    "check_handle",
    "encode_error",
    "encode_request",
    "encode_response",
    "encode_response_parts",
    "encode_stream_data",
    "pack",
    "parse_message",
    "parse_request",
    "wire_fields",
]
