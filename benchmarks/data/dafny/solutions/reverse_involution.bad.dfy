// Reversal of a sequence, element by element from the front.
function Rev(s: seq<int>): seq<int>
{
  if |s| == 0 then [] else Rev(s[1..]) + [s[0]]
}

// Reversing twice gives back the sequence.
lemma RevRev(s: seq<int>)
  ensures Rev(Rev(s)) == s
{
  if |s| > 0 {
    RevRev(s[1..]);
  }
}
