"""SIPp scenarios for the lab, generated from small templates.

Every scenario logs one line per event with `<log>` (SIPp's -trace_logs), so tests read
what happened from SIPp's own files, never from Caseline's logs:
    "<caller number> <event>"   e.g. "+79161234567 answered", "+79161234567 cancelled"
"""
from __future__ import annotations

# Extract the user part of From into $from (the number the phone displays).
_FROM_USER = '<ereg regexp="sip:([^@;>]*)@" search_in="hdr" header="From:" check_it="false" assign_to="junk,from"/>'

_CALLER_INVITE = """\
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[field1]" <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
    ]]>
  </send>
"""

_REJECTIONS = ("403", "404", "480", "486", "487", "500", "503", "603")

# ACK of a 200 and our own BYE (CSeq 2) with its 200, shared by the caller scenarios
_ACK_AFTER_200 = """  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
"""
_OUR_BYE = """  <send retrans="500"><![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="200"/>
"""


def caller(hold_ms: int, audio: str | None = None) -> str:
    """A client calling in: talks `hold_ms` after answer then hangs up, unless hung up first.

    `audio`: a raw 8 kHz PCMU file SIPp streams (looped) once answered, for a caller who
    really says something (voicemail keeps no message of pure silence).
    """
    speak = f'  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>\n' if audio else ""
    rejects = "\n".join(
        f'  <recv response="{code}" optional="true" next="rejected_{code}"/>' for code in _REJECTIONS)
    reject_blocks = "\n".join(f"""
  <label id="rejected_{code}"/>
  <nop><action><log message="[field0] rejected_{code}"/></action></nop>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <nop next="end"/>""" for code in _REJECTIONS)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caseline caller">
{_CALLER_INVITE}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="180" optional="true"/>
{rejects}
  <recv response="200" rtd="true" rrs="true"/>
  <nop><action><log message="[field0] answered"/></action></nop>
{_ACK_AFTER_200}{speak}  <recv request="BYE" timeout="{hold_ms}" ontimeout="hang_up"/>
  <nop><action><log message="[field0] remote_hangup"/></action></nop>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <nop next="end"/>
  <label id="hang_up"/>
{_OUR_BYE}  <nop><action><log message="[field0] hung_up"/></action></nop>
  <nop next="end"/>
{reject_blocks}
  <label id="end"/>
</scenario>
"""


def _info_dtmf(digit: str, cseq: int, gap_ms: int = 300) -> str:
    return f"""  <send><![CDATA[
      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160
    ]]></send>
  <recv response="200"/>
  <pause milliseconds="{gap_ms}"/>
"""


def ivr_caller(digits: str, after_answer_ms: int, hold_ms: int, gap_ms: int = 300) -> str:
    """A client who, `after_answer_ms` after being answered, presses `digits` (SIP INFO
    DTMF: the trunk's dtmf_mode=auto_info accepts it), then behaves like `caller`."""
    xml = caller(hold_ms)
    presses = f'  <pause milliseconds="{after_answer_ms}"/>\n' + "".join(
        _info_dtmf(d, 2 + i, gap_ms) for i, d in enumerate(digits))
    marker = '  <recv request="BYE" timeout='
    xml = xml.replace(marker, presses + marker, 1)
    return xml.replace("CSeq: 2 BYE", f"CSeq: {2 + len(digits)} BYE")


def bench_caller(talk_ms: int = 200, answer_within_ms: int = 10_000) -> str:
    """The call-rate benchmark's caller: RTD 1 runs from the INVITE to the first 180/183/200
    (post-dial delay, read with -trace_rtt), then a short talk and our BYE.

    The phones answer at once, so a call not answered within `answer_within_ms` is stuck
    behind an overload: SIPp counts it failed (and cancels it) instead of waiting for ever."""
    invite = _CALLER_INVITE.replace('<send retrans="500">', '<send retrans="500" start_rtd="1">', 1)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caseline bench caller">
{invite}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true" rtd="1"/>
  <recv response="183" optional="true" rtd="1"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="1" rrs="true" timeout="{answer_within_ms}"/>
{_ACK_AFTER_200}  <pause milliseconds="{talk_ms}"/>
{_OUR_BYE}</scenario>
"""


def early_hangup_caller(after_ring_ms: int) -> str:
    """A client who hangs up (CANCEL) `after_ring_ms` after hearing ringing, before any answer.

    CANCEL and ACK must carry the INVITE's branch: SIPp's [branch-N] counts scenario
    elements back to the INVITE (element 0), so N is this element's index.
    """
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caseline early hang-up caller">
{_CALLER_INVITE}
  <recv response="100" optional="true"/>
  <recv response="180"/>
  <nop><action><log message="[field0] ringing"/></action></nop>
  <pause milliseconds="{after_ring_ms}"/>
  <send><![CDATA[
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-5]
      From: "[field1]" <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="180" optional="true"/>
  <recv response="200" request_CSeq="CANCEL"/>
  <recv response="487"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-9]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <nop><action><log message="[field0] cancelled"/></action></nop>
</scenario>
"""


def _phone_head(cancellable: bool) -> str:
    """Receive the INVITE; keep its CSeq when a CANCEL may need a 487 answer."""
    cseq = ('\n      <ereg regexp="([0-9]+) INVITE" search_in="hdr" header="CSeq:" check_it="true"'
            ' assign_to="junk2,icseq"/>' if cancellable else "")
    # SIPp refuses variables referenced once: the whole-match slots are reset here.
    reset = '<assignstr assign_to="junk" value=""/>' + (
        '<assignstr assign_to="junk2" value=""/>' if cancellable else "")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caseline phone">
  <recv request="INVITE">
    <action>{_FROM_USER}{cseq}</action>
  </recv>
  <nop><action>{reset}<log message="[$from] invite"/></action></nop>
"""


_RINGING = """  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:phone@[local_ip]:[local_port]>
      Content-Length: 0
    ]]></send>
"""

_ANSWER_AND_TALK = """  <label id="answer"/>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:phone@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]></send>
  <recv request="ACK"/>
  <nop><action><log message="[$from] answered"/></action></nop>
  <recv request="BYE"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <nop><action><log message="[$from] bye"/></action></nop>
  <nop next="end"/>
"""

_CANCELLED = """  <label id="cancelled"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <send><![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$icseq] INVITE
      Content-Length: 0
    ]]></send>
  <recv request="ACK"/>
  <nop><action><log message="[$from] cancelled"/></action></nop>
  <nop next="end"/>
"""


def phone_answers(after_ms: int = 0) -> str:
    """A phone that rings `after_ms`, then answers and talks until the other side hangs up."""
    return (_phone_head(True) + _RINGING
            + f'  <recv request="CANCEL" timeout="{max(after_ms, 1)}" ontimeout="answer" next="cancelled"/>\n'
            + _ANSWER_AND_TALK + _CANCELLED + '  <label id="end"/>\n</scenario>\n')


def phone_never_answers() -> str:
    """A phone that rings until the call is cancelled (ring timeout or the caller hung up)."""
    return (_phone_head(True) + _RINGING + '  <recv request="CANCEL" next="cancelled"/>\n'
            + _CANCELLED + '  <label id="end"/>\n</scenario>\n')


def phone_busy() -> str:
    """A phone that answers every call with 486 Busy Here."""
    return _phone_head(False) + """  <send><![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <recv request="ACK"/>
  <nop><action><log message="[$from] busy"/></action></nop>
</scenario>
"""


def phone_transfers(to: str, after_ms: int = 0, talk_ms: int = 1000) -> str:
    """A phone that answers after `after_ms`, talks `talk_ms`, then blind-transfers the call
    (an in-dialog REFER, as a desk phone's "transfer" key sends) to extension `to`.

    Like most desk phones it hangs up as soon as the REFER is accepted (202); Asterisk's
    NOTIFYs (transfer progress, RFC 3515) are answered by SIPp itself (-aa: they may come
    before or after the 202). Its log says "<number> transferred", then "<number> bye".
    """
    head = _phone_head(True).replace(
        f"    <action>{_FROM_USER}",
        # the INVITE's From (with Asterisk's tag) is the To of every request we send in-dialog
        '    <action><ereg regexp=".*" search_in="hdr" header="From:" check_it="true"'
        ' assign_to="peer"/>'
        # Asterisk's Contact: where in-dialog requests go, and the host of the Refer-To
        '<ereg regexp="&lt;sip:([^@>]*@([^>;]*))" search_in="hdr" header="Contact:" check_it="true"'
        f' assign_to="junk3,contact,pbx"/>{_FROM_USER}').replace(
        '<assignstr assign_to="junk" value=""/>',
        '<assignstr assign_to="junk" value=""/><assignstr assign_to="junk3" value=""/>')
    answered = _ANSWER_AND_TALK.split('  <recv request="BYE"/>')[0]
    refer = f"""  <pause milliseconds="{max(talk_ms, 1)}"/>
  <send retrans="500"><![CDATA[
      REFER sip:[$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:phone@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$peer]
      Call-ID: [call_id]
      CSeq: 101 REFER
      Contact: <sip:phone@[local_ip]:[local_port]>
      Refer-To: <sip:{to}@[$pbx]>
      Referred-By: <sip:phone@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="202"/>
  <nop><action><log message="[$from] transferred"/></action></nop>
  <send retrans="500"><![CDATA[
      BYE sip:[$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:phone@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$peer]
      Call-ID: [call_id]
      CSeq: 102 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="200"/>
  <nop><action><log message="[$from] bye"/></action></nop>
  <nop next="end"/>
"""
    return (head + _RINGING
            + f'  <recv request="CANCEL" timeout="{max(after_ms, 1)}" ontimeout="answer" next="cancelled"/>\n'
            + answered + refer + _CANCELLED + '  <label id="end"/>\n</scenario>\n')


def _ok_to_bye() -> str:
    return """  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
"""


def phone_attended_transfers(to: str, talk_ms: int = 1000, consult_ms: int = 2000) -> str:
    """A phone that answers, talks `talk_ms`, then makes an attended transfer to `to`:
    it calls `to` itself (the consultation, a second dialog through Asterisk), talks with
    them `consult_ms`, then sends REFER on the first call with `Replaces` naming the
    consultation (RFC 3891/5589), as a desk phone's "transfer" after a consult does.

    SIPp runs both dialogs as one call: the consultation's Call-ID is `consult///` + the
    first call's, which SIPp matches to the same call (its `///` prefix rule). Asterisk then
    joins the client with `to` and hangs up both of this phone's legs; the phone answers
    those BYEs (or sends its own if none comes). Log: "transferred", then "bye".
    """
    head = phone_transfers(to, 0, talk_ms).split('  <pause milliseconds=')[0]
    consult = f"""  <pause milliseconds="{max(talk_ms, 1)}"/>
  <send retrans="500"><![CDATA[
      INVITE sip:{to}@[$pbx] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:phone@[local_ip]:[local_port]>;tag=consult[call_number]
      To: <sip:{to}@[$pbx]>
      Call-ID: consult///[call_id]
      CSeq: 1 INVITE
      Contact: <sip:phone@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687638 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200">
    <action><ereg regexp=";tag=([^;>[:space:]]*)" search_in="hdr" header="To:" check_it="true"
      assign_to="junk4,btag"/><ereg regexp="&lt;sip:([^>;]*)" search_in="hdr" header="Contact:"
      check_it="true" assign_to="junk5,bcontact"/></action>
  </recv>
  <nop><action><assignstr assign_to="junk4" value=""/><assignstr assign_to="junk5" value=""/>
    <log message="[$from] consulting"/></action></nop>
  <send><![CDATA[
      ACK sip:[$bcontact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:phone@[local_ip]:[local_port]>;tag=consult[call_number]
      To: <sip:{to}@[$pbx]>;tag=[$btag]
      Call-ID: consult///[call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <pause milliseconds="{max(consult_ms, 1)}"/>
  <send retrans="500"><![CDATA[
      REFER sip:[$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:phone@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$peer]
      Call-ID: [call_id]
      CSeq: 101 REFER
      Contact: <sip:phone@[local_ip]:[local_port]>
      Refer-To: <sip:{to}@[$pbx]?Replaces=consult%2F%2F%2F[call_id]%3Bto-tag%3D[$btag]%3Bfrom-tag%3Dconsult[call_number]>
      Referred-By: <sip:phone@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="202"/>
  <nop><action><log message="[$from] transferred"/></action></nop>
  <recv request="BYE" timeout="5000" ontimeout="our_byes"/>
{_ok_to_bye()}  <recv request="BYE" timeout="5000" ontimeout="done"/>
{_ok_to_bye()}  <nop next="done"/>
  <label id="our_byes"/>
  <send retrans="500"><![CDATA[
      BYE sip:[$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:phone@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$peer]
      Call-ID: [call_id]
      CSeq: 102 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv response="200"/>
  <label id="done"/>
  <nop><action><log message="[$from] bye"/></action></nop>
  <nop next="end"/>
"""
    cancelled = _CANCELLED
    return head + consult + cancelled + '  <label id="end"/>\n</scenario>\n'
