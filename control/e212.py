"""E.212: where an IMSI's MCC+MNC ends. An IMSI does not say how long its MNC is (2 or 3 digits);
the numbering plan does: the countries below give their networks 3-digit MNCs (North America and
the Caribbean, India's 405 series, some of Latin America), every other country 2 digits. A
network's own signaling says it where it carries a PLMN (an LAI, a cell id: the MNC's filler
digit), which is what `places.yaml` regions match; this table is for the IMSI alone (the
`mccmnc` field of `inbound_roamer`)."""
import numpy as np

THREE_DIGIT_MNC = frozenset((
    "302",                                      # Canada
    "310", "311", "312", "313", "314", "315", "316",    # United States
    "334",                                      # Mexico
    "338", "342", "344", "346", "348", "350", "352", "354", "356", "358", "360", "365", "366", "376",
    # Jamaica, Barbados, Antigua, Cayman, BVI, Bermuda, Grenada, Montserrat, St Kitts, St Lucia,
    # St Vincent, Anguilla, Dominica, Turks and Caicos
    "405",                                      # India (the 405 series; 404 has 2 digits)
    "708",                                      # Honduras
    "722",                                      # Argentina
    "732",                                      # Colombia
    "750",                                      # Falkland Islands
))
_THREE = np.array(sorted(THREE_DIGIT_MNC))


def mccmnc(imsi) -> np.ndarray:
    """The MCC+MNC of IMSIs (digit strings): 6 digits in the countries of 3-digit MNCs, else 5
    ('' stays '')."""
    imsi = np.asarray(imsi, "U15")
    return np.where(np.isin(imsi.astype("U3"), _THREE), imsi.astype("U6"), imsi.astype("U5"))
