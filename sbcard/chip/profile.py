"""Every file id, tag, AID and instruction byte of sbcard's card profile.

docs/card-profile.md explains them; code elsewhere names these constants instead of
spelling out bytes.
"""

from __future__ import annotations

import enum

# Answer to reset: 3B 6C 00 00 + "SBC3" + chip serial (8).
ATR_PREFIX = bytes.fromhex("3B6C0000") + b"SBC3"
OS_VERSION = bytes.fromhex("0301")

SSSE_NAME = "sx1.sh.社会保障".encode("gbk")
AID_TUNION = bytes.fromhex("A000000632010105")
AID_TUNION_JJJ = bytes.fromhex("A00000063201010510009156000014A1")
AID_DF01 = bytes.fromhex("D15600000501")
AID_DF02 = bytes.fromhex("D15600000502")
AID_DF04 = bytes.fromhex("D15600000503")  # medical insurance
AID_DF03 = bytes.fromhex("D15600000504")
AID_DF05 = bytes.fromhex("D15600000505")
RID_MOHRSS = "D156000005"
MF_FID = bytes.fromhex("3F00")  # the master file, selected by FID (00 A4 00 00 02 3F00)


class LifeState(enum.IntEnum):
    BLANK = 0x01
    PERSONALISING = 0x02
    PERSONALISED = 0x03


class KeyUsage(enum.IntEnum):
    TRANSPORT = 0x00
    MAINTENANCE = 0x01
    PURCHASE = 0x02  # DPK
    LOAD = 0x03  # DLK
    TAC = 0x04  # DTK
    APP_MAINTENANCE = 0x05  # DAMK


TRANSPORT_KEY_INDEX = 0x00
CARD_KEY_INDEX = 0x01
EXT_AUTH_TRIES = 15
PIN_TRIES = 3
PIN_DIGITS = 6


# SSSE files (SFI) and record tags.
SFI_EF05 = 0x05
SFI_EF06 = 0x06
SFI_EF08 = 0x08


class Tag(enum.IntEnum):
    CARD_ID_CODE = 0x01
    CARD_TYPE = 0x02
    SPEC_VERSION = 0x03
    INIT_ORG = 0x04
    ISSUE_DATE = 0x05
    EXPIRY_DATE = 0x06
    CARD_NUMBER = 0x07
    CITIZEN_ID = 0x08
    NAME = 0x09
    SEX = 0x0A
    ETHNICITY = 0x0B
    BIRTH_PLACE = 0x0C
    BIRTH_DATE = 0x0D


TAG_LENGTHS = {
    Tag.CARD_ID_CODE: 16,
    Tag.CARD_TYPE: 1,
    Tag.SPEC_VERSION: 4,
    Tag.INIT_ORG: 12,
    Tag.ISSUE_DATE: 4,
    Tag.EXPIRY_DATE: 4,
    Tag.CARD_NUMBER: 9,
    Tag.CITIZEN_ID: 18,
    Tag.NAME: 30,
    Tag.SEX: 1,
    Tag.ETHNICITY: 1,
    Tag.BIRTH_PLACE: 3,
    Tag.BIRTH_DATE: 4,
}
EF05_TAGS = tuple(range(0x01, 0x08))
EF06_TAGS = tuple(range(0x08, 0x0E))
CARD_TYPE_THIRD_GEN = b"3"
SPEC_VERSION_3 = b"3.00"
VALIDITY_YEARS = 10


# DF04 (medical) record tags.
class MedicalTag(enum.IntEnum):
    INSURED_REGION = 0x01
    INSURANCE_TYPE = 0x02
    RETIRED = 0x03
    PERSONAL_ACCOUNT = 0x04


class OfflineTag(enum.IntEnum):
    LIMIT = 0x01
    USED = 0x02
    YEAR = 0x03


MEDICAL_LOG_RECORDS = 10
MEDICAL_LOG_RECORD_LEN = 32

# T-Union files.
SFI_TU_ISSUER = 0x15  # 30 bytes, also the FCI's 9F0C
SFI_TU_MANAGEMENT = 0x17  # 64 bytes
SFI_TU_LOG = 0x18  # cyclic 10 x 23
SFI_TU_CAPP = 0x1A  # 8 x 48
TU_ISSUER_LEN = 30
TU_MANAGEMENT_LEN = 64
TU_LOG_RECORDS = 10
TU_LOG_RECORD_LEN = 23
TU_CAPP_RECORDS = 8
TU_CAPP_RECORD_LEN = 48
TAG_FCI = 0x6F
TAG_FILE_ID = 0x83  # in the MF's FCI
TAG_DF_NAME = 0x84
TAG_FCI_PROPRIETARY = 0xA5
TAG_TU_ISSUER_DATA = 0x9F0C

MAX_BALANCE_FEN = 100_000
TU_APP_TYPE_PURSE = 0x01
TU_APP_VERSION = 0x03
APP_SERIAL_PREFIX = "0310"


class Ins(enum.IntEnum):
    SELECT = 0xA4
    READ_RECORD = 0xB2
    READ_BINARY = 0xB0
    UPDATE_RECORD = 0xDC
    UPDATE_BINARY = 0xD6
    APPEND_RECORD = 0xE2
    GET_CHALLENGE = 0x84
    EXTERNAL_AUTHENTICATE = 0x82
    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCA
    # proprietary (CLA 80 / 84)
    ERASE = 0x0E
    WRITE_KEY = 0xD4
    SET_STATUS = 0xF0
    GET_BALANCE = 0x5C
    INITIALIZE = 0x50
    DEBIT_FOR_PURCHASE = 0x54
    CREDIT_FOR_LOAD = 0x52
    GET_TRANSACTION_PROVE = 0x5A
    UPDATE_CAPP_DATA_CACHE = 0xDC  # with CLA 80
    APPLICATION_BLOCK = 0x1E
    APPLICATION_UNBLOCK = 0x18
    STORE_DATA = 0xE2  # with CLA 80 (GlobalPlatform): the card factory's personalisation


CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80
CLA_SECURE = 0x84

# INITIALIZE P1 values.
INIT_LOAD = 0x00
INIT_PURCHASE = 0x01
INIT_CAPP_PURCHASE = 0x03
P2_EP = 0x02
P2_ED = 0x01
GET_DATA_CHIP_INFO = (0x00, 0xC1)

# STORE DATA (80 E2 P1 <block no.>): P1 bits as GlobalPlatform defines them, and the DGIs
# (Data Grouping Identifiers) this card takes. 'SS00' is the whole EF with SFI SS of the
# selected DF (a TLV file's records, concatenated; a binary file's bytes).
STORE_DATA_DGI = 0x08  # b5-b4 = 01: the data are DGIs (no encryption bits: b7-b6 = 00)
STORE_DATA_LAST = 0x80  # b8: the last block, which makes the card personalised
DGI_KEYS = 0x8000  # per key: usage (1) ‖ index (1) ‖ algorithm id (1) ‖ version (1) ‖ key (16)
DGI_KEY_ENTRY_LEN = 20
DGI_PIN = 0x8010  # the PIN, 3 BCD bytes; its try counter starts at PIN_TRIES
DGI_LONG_LENGTH = 0xFF  # a DGI length byte FF: two length bytes follow (255 bytes or more)


def file_dgi(sfi: int) -> int:
    """The DGI of a whole EF of the selected DF: its SFI, then 00."""
    return sfi << 8


def record_p2(sfi: int) -> int:
    """P2 of READ/UPDATE RECORD: the SFI, and P1 names the record (by number or tag)."""
    return (sfi << 3) | 0x04


# T-Union EF 0017 (management and concession data, 64 bytes): offsets and codes
# (sbcard/domain/concessions.py encodes and decodes it; its tests check it agrees with these).
MGMT_VERSION = 0x01
MGMT_OFF_VERSION = 0
MGMT_OFF_CONCESSION = 1  # 00 none, 01 student, 02 Tianjin elderly free ride, 03 Beijing elderly free bus
MGMT_OFF_REGION = 2  # 3 BCD
MGMT_OFF_START = 5  # 4 BCD
MGMT_OFF_END = 9  # 4 BCD
MGMT_OFF_STATUS = 13  # 01 enabled, 02 locked
CONCESSION_NONE = 0x00
CONCESSION_STUDENT = 0x01
CONCESSION_ELDERLY = 0x02  # Tianjin's 65+ free ride
CONCESSION_BJ_ELDERLY = 0x03  # Beijing's 60+ free bus (北京通—养老助残卡's transit function), issue 16
CONCESSION_ENABLED = 0x01
CONCESSION_LOCKED = 0x02

# T-Union capp cache record (48 bytes; record 1 = the metro operators' slot).
CAPP_METRO_RECORD = 1
CAPP_INSIDE = 0x01
CAPP_NONE = 0x00

# The PSAM (terminals/psam.py): the terminal's secure access module.
PSAM_ATR_PREFIX = bytes.fromhex("3B6C0000") + b"SBP3"
SFI_PSAM_TERMINAL_NO = 0x16  # READ BINARY 00 B0 96 00 06


class PsamIns(enum.IntEnum):
    READ_BINARY = 0xB0
    INIT_SAM_FOR_PURCHASE = 0x70
    VERIFY_MAC2 = 0x72
    APPLICATION_BLOCK_MAC = 0x7C
    BATCH_MAC = 0x7E  # an upload batch's MAC under the terminal's upload key (sbcard.chip.upload_batch)


PSAM_INIT_NEW = 0x00  # P1 of INIT SAM FOR PURCHASE: a new terminal serial
PSAM_INIT_AGAIN = 0x01  # the same session for a serial already used (tear recovery)
