#!/usr/bin/env perl
# A reference Redox client for the contract-test harness, in Perl with core modules only.
#
# Written from docs/clients.md, `redox-emulator test --explain`, the probe's JSON Schema and the
# scenario files alone, to show that the protocol can be implemented without reading the other
# reference clients or the harness. Three commands share $REDOX_HARNESS_WORKDIR:
#
#   send                 authenticate, then a day's outbound work against $REDOX_API_URL
#   serve --port N       the webhook receiver: handshake, verification-token check, ack, then process
#   probe                print what the client processed, as one JSON object
#
# The receiver writes each genuine delivery to an inbox file before it answers 200 and processes the
# inbox after answering; the probe processes whatever is still unprocessed, under the same lock, so it
# never reads state that a just-acknowledged delivery has not reached yet.
use strict;
use warnings;

use Fcntl qw(:flock O_WRONLY O_APPEND O_CREAT);
use File::Spec;
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);

my $JSON = JSON::PP->new->utf8->canonical;
my $TRUE = JSON::PP::true;

my $REQUEST_TIMEOUT = 5;      # seconds; above the emulator's own 504, which comes in well under one
my $MAX_RETRY_AFTER = 0.25;   # seconds; the emulator's clock is fast-forwarded, its Retry-After is not ours
my $MAX_429_RETRIES = 3;
my $MAX_BODY = 20 * 1024 * 1024;

sub logline { print STDERR "redox_client.pl: ", @_, "\n" }

sub workdir {
    my $dir = $ENV{REDOX_HARNESS_WORKDIR} // '.';
    return $dir;
}

sub state_path { File::Spec->catfile(workdir(), @_) }

# ---------------------------------------------------------------- files shared by the commands

sub read_json_file {
    my ($path, $default) = @_;
    open(my $fh, '<:raw', $path) or return $default;
    local $/;
    my $text = <$fh>;
    close $fh;
    return $default unless defined $text && length $text;
    return $JSON->decode($text);
}

sub write_json_file {    # atomically: a reader sees the old file or the new one, never half of one
    my ($path, $data) = @_;
    my $tmp = "$path.tmp.$$";
    open(my $fh, '>:raw', $tmp) or die "cannot write $tmp: $!\n";
    print {$fh} $JSON->encode($data);
    close $fh or die "cannot write $tmp: $!\n";
    rename $tmp, $path or die "cannot rename $tmp: $!\n";
}

sub with_lock {
    my ($code) = @_;
    my $path = state_path('receiver.lock');
    open(my $lock, '>>', $path) or die "cannot open $path: $!\n";
    flock($lock, LOCK_EX) or die "cannot lock $path: $!\n";
    my @result = $code->();
    close $lock;
    return wantarray ? @result : $result[0];
}

# ---------------------------------------------------------------- send

sub env_required {
    my ($name) = @_;
    my $value = $ENV{$name};
    die "redox_client.pl: $name is not set\n" unless defined $value && length $value;
    return $value;
}

sub http {
    return HTTP::Tiny->new(timeout => $REQUEST_TIMEOUT, keep_alive => 1, agent => 'redox-client-perl/1');
}

sub fetch_token {    # OAuth client credentials; the legacy API key flow when no OAuth client is given
    my ($ua) = @_;
    my ($res, $field);
    for my $attempt (1, 2) {    # a 5xx or a connection error is tried again once
        if (defined $ENV{REDOX_CLIENT_ID} && length $ENV{REDOX_CLIENT_ID}) {
            $res = $ua->post_form(env_required('REDOX_TOKEN_URL'), {
                grant_type    => 'client_credentials',
                client_id     => $ENV{REDOX_CLIENT_ID},
                client_secret => env_required('REDOX_CLIENT_SECRET'),
            });
            $field = 'access_token';
        } else {
            $res = $ua->post(env_required('REDOX_AUTH_URL'), {
                headers => {'Content-Type' => 'application/json'},
                content => $JSON->encode({apiKey => env_required('REDOX_API_KEY'),
                                          secret => env_required('REDOX_API_SECRET')}),
            });
            $field = 'accessToken';
        }
        last unless $res->{status} >= 500;
    }
    if (!$res->{success}) {
        logline("authentication failed: $res->{status} ", substr($res->{content} // '', 0, 200));
        return undef;
    }
    my $answer = eval { $JSON->decode($res->{content}) };
    return ref $answer eq 'HASH' ? $answer->{$field} : undef;
}

sub retry_after_seconds {
    my ($value) = @_;
    my $seconds = (defined $value && $value =~ /^\s*(\d+(?:\.\d+)?)\s*$/) ? $1 : 1;
    return $seconds < $MAX_RETRY_AFTER ? $seconds : $MAX_RETRY_AFTER;
}

sub meta {
    my ($data_model, $event_type) = @_;
    return {
        DataModel     => $data_model,
        EventType     => $event_type,
        EventDateTime => strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime),
        Test          => $TRUE,
        Destinations  => [{ID => env_required('REDOX_DESTINATION_ID')}],
    };
}

sub redox_errors {
    my ($res) = @_;
    my $answer = eval { $JSON->decode($res->{content} // '') };
    return '' unless ref $answer eq 'HASH' && ref $answer->{Meta} eq 'HASH';
    my $errors = $answer->{Meta}{Errors};
    return '' unless ref $errors eq 'ARRAY' && @$errors;
    return join('; ', map { ref $_ eq 'HASH' ? ($_->{Text} // '') : '' } @$errors);
}

# One request to /endpoint, with the retry policy of docs/clients.md: a 401 gets a new token and one
# resend; a 429 waits (capped) and is resent at most three times, then ends the batch; a 5xx or a
# connection error is resent once; any other 4xx is final. Each limit counts every later send of the
# request from the first answer of its kind, whatever answers the resends get: a search answered 504
# whose resend meets an expired token (tokens die in under a second when the emulator's clock runs
# 600 times fast) is not sent a third time.
my %RESENDS = (401 => 1, 429 => $MAX_429_RETRIES, 5 => 1);

sub send_event {
    my ($client, $label, $payload) = @_;
    if ($client->{rate_limited}) {    # the rest of the batch waits for a later run instead of hammering
        logline("$label: not sent, Redox is still rate limiting this client");
        return {status => 429, success => '', content => '', headers => {}};
    }
    my $body = $JSON->encode($payload);    # serialised once: a resend is the same request
    my $left;                              # sends still allowed; undef: no limit met yet
    my $retry = sub {
        my ($kind) = @_;
        $left = $RESENDS{$kind} if !defined $left || $RESENDS{$kind} < $left;
        return $left-- > 0;
    };
    while (1) {
        my $res = $client->{ua}->request('POST', $client->{api_url}, {
            headers => {'Content-Type' => 'application/json', Authorization => "Bearer $client->{token}"},
            content => $body,
        });
        my $status = $res->{status};
        my $errors = redox_errors($res);
        logline("$label: $status", length $errors ? " ($errors)" : '');
        if ($status == 599 || $status >= 500) {    # 599: HTTP::Tiny's connection error or timeout
            logline("$label: the EHR is not answering") if $status == 504;
            next if $retry->(5);
            return $res;
        }
        if ($status == 401) {    # a new token in any case, for this request or the next ones
            my $token = fetch_token($client->{ua});
            return $res unless defined $token;
            $client->{token} = $token;
            next if $retry->(401);
            return $res;
        }
        if ($status == 429) {
            if ($retry->(429)) {
                sleep(retry_after_seconds($res->{headers}{'retry-after'}));
                next;
            }
            logline("$label: still rate limited, giving up on it and on the rest of the batch");
            $client->{rate_limited} = 1;
            return $res;
        }
        if ($status == 413) {
            logline("$label: too large for Redox; a document this size goes through POST /upload");
        } elsif ($status == 400 && $errors =~ /No subscriptions/) {
            logline("$label: routing error, check the destination's subscriptions (a configuration problem)");
        }
        return $res;
    }
}

sub answer_json {
    my ($res) = @_;
    return undef unless $res->{success};
    my $answer = eval { $JSON->decode($res->{content}) };
    return ref $answer eq 'HASH' ? $answer : undef;
}

my @NEW_PATIENTS = (
    ['0000008101', 'Ada',    'Lovelace', '1815-12-10', 'Female'],
    ['0000008102', 'Alan',   'Turing',   '1912-06-23', 'Male'],
    ['0000008103', 'Grace',  'Hopper',   '1906-12-09', 'Female'],
    ['0000008104', 'Edsger', 'Dijkstra', '1930-05-11', 'Male'],
);

my $BIXBY = {Identifiers => [{ID => '0000000001', IDType => 'MR'}],
             Demographics => {FirstName => 'Timothy', LastName => 'Bixby', DOB => '2008-01-06'}};

sub cmd_send {
    my $ua = http();
    my $client = {ua => $ua, api_url => env_required('REDOX_API_URL')};
    $client->{token} = fetch_token($ua);
    if (!defined $client->{token}) { logline('no token: nothing sent'); return 3 }

    for my $p (@NEW_PATIENTS) {
        my ($mrn, $first, $last, $dob, $sex) = @$p;
        send_event($client, "PatientAdmin.NewPatient $mrn", {
            Meta    => meta('PatientAdmin', 'NewPatient'),
            Patient => {Identifiers  => [{ID => $mrn, IDType => 'MR'}],
                        Demographics => {FirstName => $first, LastName => $last, DOB => $dob, Sex => $sex}},
        });
    }

    my $search = send_event($client, 'PatientSearch.Query Jordan Rivera', {
        Meta    => meta('PatientSearch', 'Query'),
        Patient => {Demographics => {FirstName => 'Jordan', LastName => 'Rivera', DOB => '1979-05-04'}},
    });
    my $found = answer_json($search);
    my $patient = $found && ref $found->{Patient} eq 'HASH' ? $found->{Patient} : {};
    my $ids = ref $patient->{Identifiers} eq 'ARRAY' ? $patient->{Identifiers} : [];
    if (@$ids) {
        my %demographics = %{ref $patient->{Demographics} eq 'HASH' ? $patient->{Demographics} : {}};
        $demographics{$_} //= {FirstName => 'Jordan', LastName => 'Rivera', DOB => '1979-05-04'}->{$_}
            for qw(FirstName LastName DOB);
        $demographics{EmailAddresses} = ['jordan.rivera@example.org'];
        send_event($client, 'PatientAdmin.PatientUpdate Jordan Rivera', {
            Meta    => meta('PatientAdmin', 'PatientUpdate'),
            Patient => {Identifiers => $ids, Demographics => \%demographics},
        });
    } elsif ($found && ref $found->{PotentialMatches} eq 'ARRAY' && @{$found->{PotentialMatches}}) {
        logline('PatientSearch.Query Jordan Rivera: ', scalar @{$found->{PotentialMatches}},
                ' potential matches, patient not identified: more criteria needed, nobody updated');
    } else {
        logline('PatientSearch.Query Jordan Rivera: no patient identified, nobody updated');
    }

    my $order_id = 'ORD-85025';
    my $order = send_event($client, "Order.New $order_id", {
        Meta    => meta('Order', 'New'),
        Patient => $BIXBY,
        Order   => {ID => $order_id, TransactionDateTime => strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime),
                    Priority => 'Routine',
                    Procedure => {Code => '85025', Codeset => 'CPT', Description => 'CBC'}},
    });
    my $status = $order->{success} ? 'placed'
               : $order->{status} == 400 ? 'rejected'
               : "not-sent-$order->{status}";
    logline("Order.New $order_id: $status");
    write_json_file(state_path('sent.json'), {orders => {$order_id => {status => $status}}});

    send_event($client, 'Notes.New discharge summary', {
        Meta    => meta('Notes', 'New'),
        Patient => $BIXBY,
        Visit   => {VisitNumber => 'V-20001', Location => {Type => 'Inpatient', Facility => 'Redox Hospital'}},
        Note    => {ContentType => 'Plain Text', FileName => 'discharge-summary.txt',
                    FileContents => 'A' x 70000, DocumentType => 'Discharge Summary',
                    DocumentID => 'DOC-20001', Provider => {ID => '4356789876', IDType => 'NPI'}},
    });
    return 0;
}

# ---------------------------------------------------------------- processing what the receiver got

sub event_epoch {    # Meta.EventDateTime (ISO 8601) as epoch seconds, or undef
    my ($text) = @_;
    return undef unless defined $text && !ref $text;
    my ($y, $mo, $d, $h, $mi, $s, $frac, $zone) = $text =~
        /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?)?\s*(Z|[+-]\d\d:?\d\d)?$/i
        or return undef;
    my $epoch = eval { timegm($s // 0, $mi // 0, $h // 0, $d, $mo - 1, $y) };
    return undef unless defined $epoch;
    $epoch += $frac if defined $frac;
    if (defined $zone && $zone =~ /^([+-])(\d\d):?(\d\d)$/) {
        $epoch -= ($1 eq '-' ? -1 : 1) * ($2 * 3600 + $3 * 60);
    }
    return $epoch;
}

sub mrn_of {
    my ($identifiers) = @_;
    return undef unless ref $identifiers eq 'ARRAY';
    my @ids = grep { ref $_ eq 'HASH' && defined $_->{ID} && !ref $_->{ID} } @$identifiers;
    my ($mr) = grep { ($_->{IDType} // '') =~ /^MRN?$/i } @ids;
    my $chosen = $mr // $ids[0];
    return $chosen ? "$chosen->{ID}" : undef;
}

sub process_message {
    my ($state, $message) = @_;
    my $meta = ref $message->{Meta} eq 'HASH' ? $message->{Meta} : {};
    my $kind = ($meta->{DataModel} // '') . '.' . ($meta->{EventType} // '');
    my $patient = ref $message->{Patient} eq 'HASH' ? $message->{Patient} : {};
    my $mrn = mrn_of($patient->{Identifiers});
    my $patients = $state->{patients};

    if ($kind eq 'PatientAdmin.PatientMerge' && defined $mrn) {
        for my $old (@{ref $patient->{PreviousIdentifiers} eq 'ARRAY' ? $patient->{PreviousIdentifiers} : []}) {
            next unless ref $old eq 'HASH' && defined $old->{ID} && "$old->{ID}" ne $mrn;
            my $retired = delete($patients->{"$old->{ID}"}) // {};
            my $survivor = $patients->{$mrn} //= {};
            for my $key (grep { $_ ne 'mergedInto' } keys %$retired) { $survivor->{$key} //= $retired->{$key} }
            $patients->{"$old->{ID}"} = {mergedInto => $mrn};
        }
    }
    if ($kind =~ /^PatientAdmin\./ && defined $mrn && ref $patient->{Demographics} eq 'HASH') {
        $mrn = $patients->{$mrn}{mergedInto} while defined $patients->{$mrn} && defined $patients->{$mrn}{mergedInto};
        my $record = $patients->{$mrn} //= {};
        my $when = event_epoch($meta->{EventDateTime});
        # An event older than what is already kept happened before it: it must not win.
        if (!defined $when || !defined $record->{eventTime} || $when >= $record->{eventTime}) {
            my $demographics = $patient->{Demographics};
            for my $key (qw(FirstName LastName DOB Sex)) {
                $record->{$key} = $demographics->{$key} if defined $demographics->{$key} && !ref $demographics->{$key};
            }
            $record->{eventTime} = $when if defined $when;
        }
    }
    if ($kind =~ /^Results\./ && ref $message->{Orders} eq 'ARRAY') {
        for my $order (grep { ref $_ eq 'HASH' && defined $_->{ID} } @{$message->{Orders}}) {
            my $filed = $state->{results}{"$order->{ID}"} //= {count => 0};
            $filed->{count} = $filed->{count} + 1;
            $state->{canceled}{"$order->{ID}"} = $TRUE if ($order->{Status} // '') =~ /^cancel/i;
        }
    }
    if ($kind eq 'Order.Cancel' && ref $message->{Order} eq 'HASH' && defined $message->{Order}{ID}) {
        $state->{canceled}{"$message->{Order}{ID}"} = $TRUE;
    }
}

# Applies every inbox line not yet processed; a message already seen (same Meta.Logs[0].ID) is skipped.
sub drain_inbox {
    return with_lock(sub {
        my $state_file = state_path('receiver.json');
        my $state = read_json_file($state_file, {});
        $state->{$_} //= {} for qw(patients results canceled seen);
        $state->{offset} //= 0;
        open(my $inbox, '<:raw', state_path('inbox.jsonl')) or return $state;
        seek($inbox, $state->{offset}, 0);
        my $changed = 0;
        while (my $line = <$inbox>) {
            last unless $line =~ /\n\z/;    # a line still being written is read next time
            $state->{offset} = $state->{offset} + length $line;
            $changed = 1;
            my $message = eval { $JSON->decode($line) } or next;
            my $logs = ref $message->{Meta} eq 'HASH' ? $message->{Meta}{Logs} : undef;
            my $log_id = ref $logs eq 'ARRAY' && ref $logs->[0] eq 'HASH' ? $logs->[0]{ID} : undef;
            if (defined $log_id) {
                next if $state->{seen}{$log_id};
                $state->{seen}{$log_id} = $TRUE;
            }
            process_message($state, $message);
        }
        close $inbox;
        write_json_file($state_file, $state) if $changed;
        return $state;
    });
}

sub append_inbox {
    my ($message) = @_;
    with_lock(sub {
        my $path = state_path('inbox.jsonl');
        sysopen(my $fh, $path, O_WRONLY | O_APPEND | O_CREAT) or die "cannot open $path: $!\n";
        binmode $fh;
        syswrite($fh, $JSON->encode($message) . "\n") or die "cannot write $path: $!\n";
        close $fh;
    });
}

# ---------------------------------------------------------------- probe

sub cmd_probe {
    my $received = drain_inbox();
    my $sent = read_json_file(state_path('sent.json'), {});
    my %orders = %{$sent->{orders} // {}};
    for my $id (keys %{$received->{canceled}}) {    # the EHR cancelled it afterwards (Order.Cancel, Results)
        $orders{$id} = {status => 'canceled'} unless ($orders{$id}{status} // '') eq 'rejected';
    }
    my %patients;
    for my $mrn (keys %{$received->{patients}}) {
        my %record = %{$received->{patients}{$mrn}};
        delete $record{eventTime};
        $patients{$mrn} = \%record;
    }
    print $JSON->encode({orders => \%orders, results => $received->{results}, patients => \%patients}), "\n";
    return 0;
}

# ---------------------------------------------------------------- serve: a small HTTP/1.1 server

my %REASON = (200 => 'OK', 400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
              404 => 'Not Found', 405 => 'Method Not Allowed', 413 => 'Payload Too Large');

sub same_secret {    # compares without stopping at the first difference
    my ($given, $expected) = @_;
    return 0 unless defined $given && length $given == length $expected;
    my $diff = 0;
    $diff |= ord(substr $given, $_, 1) ^ ord(substr $expected, $_, 1) for 0 .. length($expected) - 1;
    return $diff == 0;
}

sub url_decode {
    my ($text) = @_;
    $text =~ tr/+/ /;
    $text =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $text;
}

sub query_params {
    my ($query) = @_;
    my %params;
    for my $pair (split /&/, $query // '') {
        my ($key, $value) = split /=/, $pair, 2;
        $params{url_decode($key)} = url_decode($value // '');
    }
    return \%params;
}

# Returns (status, content type, body, process-after) for one request.
sub handle {
    my ($req) = @_;
    my $expected = $ENV{VERIFICATION_TOKEN} // '';
    my ($path, $query) = split /\?/, $req->{target}, 2;
    if ($path eq '/health') { return (200, 'text/plain', "ok\n") }
    if ($req->{method} eq 'GET') {    # the handshake of a destination configured for GET
        my $params = query_params($query);
        return (404, 'text/plain', "not found\n") unless defined $params->{challenge};
        return (403, 'text/plain', "wrong verification-token\n")
            unless same_secret($params->{'verification-token'}, $expected);
        return (200, 'text/plain', $params->{challenge});
    }
    return (405, 'text/plain', "POST or GET\n") unless $req->{method} eq 'POST';
    my $body = eval { $JSON->decode($req->{body}) };
    return (400, 'application/json', $JSON->encode({error => 'body is not JSON'})) unless ref $body eq 'HASH';
    if (exists $body->{challenge} && !exists $body->{Meta}) {    # the verification handshake
        my $token = $body->{'verification-token'} // $req->{headers}{'verification-token'};
        return (403, 'application/json', $JSON->encode({error => 'wrong verification-token'}))
            unless same_secret($token, $expected);
        return (200, 'application/json', $JSON->encode({challenge => $body->{challenge}}));
    }
    if (!same_secret($req->{headers}{'verification-token'}, $expected)) {
        logline('refused a delivery with a wrong or missing verification-token');
        return (401, 'application/json', $JSON->encode({error => 'wrong verification-token'}));
    }
    append_inbox($body);    # kept before the 200, so an acknowledged message is never lost
    return (200, 'application/json', $JSON->encode({received => $TRUE}), 1);
}

# Parses one complete request off the front of $$buffer: a hash, undef when more bytes are needed,
# or a string saying what is wrong with it.
sub take_request {
    my ($buffer) = @_;
    my $end = index($$buffer, "\r\n\r\n");
    if ($end < 0) { return length $$buffer > 65536 ? 'headers too large' : undef }
    my ($line, @lines) = split /\r\n/, substr($$buffer, 0, $end);
    my ($method, $target, $version) = ($line // '') =~ m{^([A-Z]+) (\S+) HTTP/(1\.[01])$} or return 'bad request line';
    my %headers;
    for (@lines) {
        my ($name, $value) = /^([^:\s]+):\s*(.*?)\s*$/ or return 'bad header';
        $headers{lc $name} = exists $headers{lc $name} ? "$headers{lc $name}, $value" : $value;
    }
    my $start = $end + 4;
    my $body;
    if (($headers{'transfer-encoding'} // '') =~ /chunked/i) {
        my ($pos, $decoded) = ($start, '');
        while (1) {
            my $eol = index($$buffer, "\r\n", $pos);
            return undef if $eol < 0;
            my ($size) = substr($$buffer, $pos, $eol - $pos) =~ /^([0-9A-Fa-f]+)/ or return 'bad chunk';
            $size = hex $size;
            return 'body too large' if length($decoded) + $size > $MAX_BODY;
            if ($size == 0) {
                my $trailer_end = index($$buffer, "\r\n", $eol + 2);
                return undef if $trailer_end < 0;    # no trailers are expected; the blank line ends it
                $pos = $trailer_end + 2;
                last;
            }
            return undef if length($$buffer) < $eol + 2 + $size + 2;
            $decoded .= substr($$buffer, $eol + 2, $size);
            $pos = $eol + 2 + $size + 2;
        }
        $body = $decoded;
        substr($$buffer, 0, $pos) = '';
    } else {
        my $length = $headers{'content-length'} // 0;
        return 'bad content-length' unless $length =~ /^\d+$/;
        return 'body too large' if $length > $MAX_BODY;
        return undef if length($$buffer) < $start + $length;
        $body = substr($$buffer, $start, $length);
        substr($$buffer, 0, $start + $length) = '';
    }
    my $connection = lc($headers{connection} // '');
    my $keep_alive = $version eq '1.1' ? $connection !~ /close/ : $connection =~ /keep-alive/;
    return {method => $method, target => $target, headers => \%headers, body => $body, keep_alive => $keep_alive};
}

sub write_all {
    my ($sock, $data) = @_;
    my $writable = IO::Select->new($sock);
    while (length $data) {
        my $n = syswrite($sock, $data);
        if (!defined $n) {
            return 0 unless $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
            $writable->can_write(5) or return 0;
            next;
        }
        substr($data, 0, $n) = '';
    }
    return 1;
}

sub respond {
    my ($sock, $status, $type, $body, $keep_alive) = @_;
    my $head = sprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n",
                       $status, $REASON{$status} // 'Unknown', $type, length $body, $keep_alive ? 'keep-alive' : 'close');
    return write_all($sock, $head . $body);
}

sub cmd_serve {
    my @args = @_;
    my $port;
    while (@args) {
        my $arg = shift @args;
        if ($arg eq '--port') { $port = shift @args } elsif ($arg =~ /^--port=(\d+)$/) { $port = $1 }
    }
    die "usage: redox_client.pl serve --port N\n" unless defined $port && $port =~ /^\d+$/;
    my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp',
                                         Listen => 128, ReuseAddr => 1)
        or die "redox_client.pl: cannot listen on 127.0.0.1:$port: $@\n";
    $listener->blocking(0);
    my $running = 1;
    $SIG{TERM} = $SIG{INT} = sub { $running = 0 };
    $SIG{PIPE} = 'IGNORE';
    logline("receiver listening on 127.0.0.1:$port");
    my $readable = IO::Select->new($listener);
    my %buffers;
    my $close = sub { my ($sock) = @_; $readable->remove($sock); delete $buffers{fileno $sock}; close $sock };
    while ($running) {
        for my $sock ($readable->can_read(0.5)) {
            if ($sock == $listener) {
                while (my $client = $listener->accept) {
                    $client->blocking(0);
                    $readable->add($client);
                    $buffers{fileno $client} = '';
                }
                next;
            }
            my $n = sysread($sock, my $chunk, 65536);
            if (!defined $n) { $close->($sock) unless $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR}; next }
            if ($n == 0) { $close->($sock); next }
            $buffers{fileno $sock} .= $chunk;
            while (1) {
                my $req = take_request(\$buffers{fileno $sock});
                last unless defined $req;
                if (!ref $req) {
                    respond($sock, ($req =~ /too large/ ? 413 : 400), 'text/plain', "$req\n", 0);
                    $close->($sock);
                    last;
                }
                my ($status, $type, $body, $process) = eval { handle($req) };
                ($status, $type, $body) = (400, 'text/plain', "could not handle the request\n") unless defined $status;
                logline("$req->{method} $req->{target}: $status") if $@;
                my $sent = respond($sock, $status, $type, $body, $req->{keep_alive});
                eval { drain_inbox() } or logline("processing failed: $@") if $process;    # after the answer
                if (!$sent || !$req->{keep_alive}) { $close->($sock); last }
            }
        }
    }
    logline('receiver stopped');
    return 0;
}

# ---------------------------------------------------------------- main

my $command = shift @ARGV // '';
my %commands = (send => \&cmd_send, serve => \&cmd_serve, probe => \&cmd_probe);
if (!$commands{$command}) {
    print STDERR "usage: redox_client.pl send | serve --port N | probe\n";
    exit 2;
}
exit $commands{$command}->(@ARGV);
