Require Import List.
Import ListNotations.

(** Appending the empty list on the right changes nothing. *)
Theorem append_nil : forall l : list nat, l ++ [] = l.
Proof.
  intros l. induction l as [| x t IH].
  - reflexivity.
  - simpl. rewrite IH. reflexivity.
Qed.
